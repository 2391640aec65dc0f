//! Collects the [`Facts`] for one explanation from the live state: the caller's taste, or the
//! aggregate taste of a group's members together with how the group's list ranked the track.

use super::facts::{self, Facts};
use crate::{
    domain::UserId, error::ApiError, groups::Room, recommend::Recommender, taste::actor::GetProfile,
};

/// Facts for one listener: their profile and the ranker's reasons for this track.
pub async fn for_listener(
    recommender: &Recommender,
    user: &UserId,
    item: u32,
) -> Result<Facts, ApiError> {
    let profile = recommender.users.send(user, GetProfile).await?;
    let reasons = recommender.reasons_for(user, item).await?;
    Ok(Facts {
        track: facts::track_facts(recommender.catalog.track(item)),
        audience: facts::audience("listener", &[profile]),
        signals: reasons.as_deref().map(facts::signals).unwrap_or_default(),
        strategy: None,
    })
}

/// Facts for a group (the caller's membership already checked): only the members' aggregate
/// taste enters, never one member's own data.
pub async fn for_group(
    recommender: &Recommender,
    room: &Room,
    item: u32,
) -> Result<Facts, ApiError> {
    let view = room.view().await?;
    let mut profiles = Vec::with_capacity(view.members.len());
    for member in &view.members {
        if let Ok(member) = UserId::parse(&member.user_id) {
            profiles.push(recommender.users.send(&member, GetProfile).await?);
        }
    }
    let list = room.recommendations().await?;
    let track = recommender.catalog.track(item);
    let picked = list
        .items
        .iter()
        .find(|i| i.track.id.as_str() == track.id.as_str());
    Ok(Facts {
        track: facts::track_facts(track),
        audience: facts::audience("group", &profiles),
        signals: picked
            .map(|p| facts::signals(&p.reasons))
            .unwrap_or_default(),
        strategy: picked.map(|_| list.strategy.clone()),
    })
}
