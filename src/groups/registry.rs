//! This process's live groups: each group's actor by id, and the live groups each member is in
//! (so that a change to a member's taste, from any endpoint, reaches every room they are in).
//! Generic over the actor, so it needs nothing from it: the actor and the service both use it,
//! neither through the other.

use std::{collections::HashMap, sync::Mutex};

use actix::{Actor, Addr};

pub struct LiveGroups<A: Actor> {
    actors: Mutex<HashMap<String, Addr<A>>>,
    /// Live groups per member's user id.
    members: Mutex<HashMap<String, Vec<Addr<A>>>>,
}

impl<A: Actor> Default for LiveGroups<A> {
    fn default() -> Self {
        Self {
            actors: Mutex::new(HashMap::new()),
            members: Mutex::new(HashMap::new()),
        }
    }
}

impl<A: Actor> LiveGroups<A> {
    /// The group's actor, if it is live.
    pub fn get(&self, id: &str) -> Option<Addr<A>> {
        let actors = self.actors.lock().expect("live groups lock");
        actors.get(id).filter(|a| a.connected()).cloned()
    }

    /// The live actor for `id`, or the one `start` makes (two loads racing: the first wins).
    pub fn get_or_start(&self, id: &str, start: impl FnOnce() -> Addr<A>) -> Addr<A> {
        let mut actors = self.actors.lock().expect("live groups lock");
        if let Some(addr) = actors.get(id).filter(|a| a.connected()) {
            return addr.clone();
        }
        let addr = start();
        actors.insert(id.to_string(), addr.clone());
        addr
    }

    /// Drops the entry if it still points at `addr` (the actor stopped).
    pub fn forget(&self, id: &str, addr: &Addr<A>) {
        let mut actors = self.actors.lock().expect("live groups lock");
        if actors.get(id) == Some(addr) {
            actors.remove(id);
        }
    }

    pub fn len(&self) -> usize {
        self.actors.lock().expect("live groups lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `addr` is a live group with `user` among its members.
    pub fn index_member(&self, user: &str, addr: &Addr<A>) {
        let mut index = self.members.lock().expect("member index lock");
        let groups = index.entry(user.to_string()).or_default();
        if !groups.contains(addr) {
            groups.push(addr.clone());
        }
    }

    /// `user` left `addr`'s group, or the group stopped.
    pub fn unindex_member(&self, user: &str, addr: &Addr<A>) {
        let mut index = self.members.lock().expect("member index lock");
        if let Some(groups) = index.get_mut(user) {
            groups.retain(|a| a != addr);
            if groups.is_empty() {
                index.remove(user);
            }
        }
    }

    /// The live groups `user` is in.
    pub fn member_groups(&self, user: &str) -> Vec<Addr<A>> {
        let index = self.members.lock().expect("member index lock");
        index.get(user).cloned().unwrap_or_default()
    }
}
