//! Collects the [`Facts`] for one explanation from the live state: the caller's taste, or the
//! aggregate taste of a group's members together with how the group's list ranked the track.

use actix::Addr;

use super::facts::{self, Facts};
use crate::{
    domain::UserId,
    error::ApiError,
    groups::actor::{mailbox, GetRecommendations, GetView, GroupActor},
    state::AppState,
    taste::actor::GetProfile,
};

/// Facts for one listener: their profile and the ranker's reasons for this track.
pub async fn for_listener(state: &AppState, user: &UserId, item: u32) -> Result<Facts, ApiError> {
    let profile = state.users.send(user, GetProfile).await?;
    let reasons = state.recommender.reasons_for(user, item).await?;
    Ok(Facts {
        track: facts::track_facts(state.catalog.track(item)),
        audience: facts::audience("listener", &[profile]),
        signals: reasons.as_deref().map(facts::signals).unwrap_or_default(),
        strategy: None,
    })
}

/// Facts for a group (the caller's membership already checked): only the members' aggregate
/// taste enters, never one member's own data.
pub async fn for_group(
    state: &AppState,
    group: &Addr<GroupActor>,
    item: u32,
) -> Result<Facts, ApiError> {
    let view = group.send(GetView).await.map_err(mailbox)?;
    let mut profiles = Vec::with_capacity(view.members.len());
    for member in &view.members {
        if let Ok(member) = UserId::parse(&member.user_id) {
            profiles.push(state.users.send(&member, GetProfile).await?);
        }
    }
    let list = group.send(GetRecommendations).await.map_err(mailbox)??;
    let track = state.catalog.track(item);
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
