//! How many publishes run at once, per server and per owner team. A publish holds a slot from
//! authorization to its answer; beyond the limits the call is RESOURCE_EXHAUSTED at once rather
//! than queued, so one team's backfill cannot take every worker and every registry connection.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::FerryError;

pub struct PublishSlots {
    max_total: usize,
    max_per_team: usize,
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    total: usize,
    /// Only teams with a publish running: the map never outgrows the limit.
    per_team: HashMap<String, usize>,
}

/// A held slot; dropping it frees the slot.
pub struct PublishSlot<'a> {
    slots: &'a PublishSlots,
    team: String,
}

impl PublishSlots {
    pub fn new(max_total: usize, max_per_team: usize) -> Self {
        Self {
            max_total: max_total.max(1),
            max_per_team: max_per_team.max(1),
            running: Mutex::default(),
        }
    }

    pub fn try_acquire(&self, team: &str) -> Result<PublishSlot<'_>, FerryError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.total >= self.max_total {
            return Err(FerryError::ResourceExhausted(format!(
                "this server is running {} publishes, its limit \
                 (limits.max_concurrent_publishes); retry later",
                self.max_total
            )));
        }
        let team_running = running.per_team.get(team).copied().unwrap_or(0);
        if team_running >= self.max_per_team {
            return Err(FerryError::ResourceExhausted(format!(
                "{team} is running {} publishes, the limit per team \
                 (limits.max_concurrent_publishes_per_team); retry later",
                self.max_per_team
            )));
        }
        running.total += 1;
        *running.per_team.entry(team.to_owned()).or_default() += 1;
        Ok(PublishSlot {
            slots: self,
            team: team.to_owned(),
        })
    }
}

impl Drop for PublishSlot<'_> {
    fn drop(&mut self) {
        let mut running = self.slots.running.lock().unwrap_or_else(|p| p.into_inner());
        running.total = running.total.saturating_sub(1);
        if let Some(count) = running.per_team.get_mut(&self.team) {
            *count -= 1;
            if *count == 0 {
                running.per_team.remove(&self.team);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_per_team_and_per_server_and_free_on_drop() {
        let slots = PublishSlots::new(3, 2);
        let a1 = slots.try_acquire("team:a").expect("first");
        let a2 = slots.try_acquire("team:a").expect("second");
        let err = slots.try_acquire("team:a").err().expect("third of a team");
        assert!(matches!(err, FerryError::ResourceExhausted(_)), "{err}");
        assert!(err.to_string().contains("per team"), "{err}");
        let b1 = slots.try_acquire("team:b").expect("another team");
        let err = slots.try_acquire("team:c").err().expect("server full");
        assert!(err.to_string().contains("this server"), "{err}");
        drop(a1);
        let c1 = slots.try_acquire("team:c").expect("a slot freed");
        drop((a2, b1, c1));
        let running = slots.running.lock().unwrap();
        assert_eq!(running.total, 0);
        assert!(running.per_team.is_empty(), "teams are evicted");
    }
}
