//! Which feedback may count as a list's reward. A like or add that quotes a `request_id`
//! rewards that list (in the bandit and in an experiment's conversions) only when the list was
//! shown to this listener and holds this track; anything else is kept as plain feedback, so one
//! listener cannot credit (or discredit) a strategy with someone else's list.

use crate::{
    domain::UserId,
    storage::{
        experiments::{find_exposure, ShownList},
        Db,
    },
};

/// Whether `user`'s feedback on `track_id` may be credited to `list`.
pub fn may_credit(list: &ShownList, user: &UserId, track_id: &str) -> bool {
    list.user_id.as_deref() == Some(user.as_str()) && list.track_ids.iter().any(|t| t == track_id)
}

/// The `request_id` to store and reward with this feedback: the one quoted when it may be
/// credited ([`may_credit`]), else none.
pub async fn credited_request(
    db: &Db,
    request_id: Option<String>,
    user: &UserId,
    track_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let Some(request_id) = request_id else {
        return Ok(None);
    };
    Ok(find_exposure(db, &request_id)
        .await?
        .filter(|list| may_credit(list, user, track_id))
        .map(|_| request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listener_shown_the_list_and_only_its_tracks() {
        let ada = UserId::generate();
        let bob = UserId::generate();
        let list = ShownList {
            user_id: Some(ada.as_str().to_string()),
            track_ids: vec!["t1".into(), "t2".into()],
        };
        assert!(may_credit(&list, &ada, "t2"));
        assert!(!may_credit(&list, &ada, "t3"), "a track not in the list");
        assert!(!may_credit(&list, &bob, "t1"), "someone else's list");
        let anonymous = ShownList {
            user_id: None,
            ..list
        };
        assert!(!may_credit(&anonymous, &ada, "t1"));
    }
}
