//! Lockstep: the hosts of one task step through their batches together, and each step tells
//! every host whether all of them succeeded it (the batched switch keeps its proxies in line).

use std::sync::Mutex;
use tokio::sync::Notify;

#[derive(Debug)]
struct Round {
    /// Hosts still taking part.
    members: usize,
    arrived: usize,
    all_ok: bool,
    generation: u64,
    last: bool,
    /// A round closed by a host leaving has no leader yet: the first host to see it leads.
    unclaimed: bool,
}

#[derive(Debug)]
pub struct Lockstep {
    round: Mutex<Round>,
    notify: Notify,
}

impl Lockstep {
    pub fn new(members: usize) -> Lockstep {
        Lockstep {
            round: Mutex::new(Round {
                members,
                arrived: 0,
                all_ok: true,
                generation: 0,
                last: true,
                unclaimed: false,
            }),
            notify: Notify::new(),
        }
    }

    fn close_round(r: &mut Round, notify: &Notify) {
        r.last = r.all_ok;
        r.generation += 1;
        r.arrived = 0;
        r.all_ok = true;
        notify.notify_waiters();
    }

    /// Report this host's outcome of the current step; returns once every host has, with
    /// whether all of them succeeded.
    pub async fn step(&self, ok: bool) -> bool {
        self.step_leading(ok).await.0
    }

    /// As `step`, and whether this host leads the next piece of work that must be done once for
    /// all of them (the last to arrive leads: exactly one host of every completed round).
    pub async fn step_leading(&self, ok: bool) -> (bool, bool) {
        let generation = {
            let mut r = self.round.lock().unwrap_or_else(|e| e.into_inner());
            r.all_ok &= ok;
            r.arrived += 1;
            if r.arrived >= r.members {
                Self::close_round(&mut r, &self.notify);
                r.unclaimed = false;
                return (r.last, true);
            }
            r.generation
        };
        loop {
            let notified = self.notify.notified();
            {
                let mut r = self.round.lock().unwrap_or_else(|e| e.into_inner());
                if r.generation != generation {
                    let lead = std::mem::take(&mut r.unclaimed);
                    return (r.last, lead);
                }
            }
            notified.await;
        }
    }

    /// This host takes no further part: finished (`ok`), or failed before it could report.
    /// A failure fails the round under way for everyone.
    pub fn leave(&self, ok: bool) {
        let mut r = self.round.lock().unwrap_or_else(|e| e.into_inner());
        r.members = r.members.saturating_sub(1);
        r.all_ok &= ok;
        if r.arrived > 0 && r.arrived >= r.members {
            Self::close_round(&mut r, &self.notify);
            r.unclaimed = true;
        }
    }
}

/// Leaves the lockstep when dropped, unless `finish` said how it ended: a host whose task ends
/// early (an error, an unreachable host) never blocks the others.
pub struct Membership<'a> {
    lockstep: &'a Lockstep,
    done: bool,
}

impl<'a> Membership<'a> {
    pub fn new(lockstep: &'a Lockstep) -> Membership<'a> {
        Membership { lockstep, done: false }
    }

    pub async fn step(&self, ok: bool) -> bool {
        self.lockstep.step(ok).await
    }

    pub fn finish(mut self, ok: bool) {
        self.done = true;
        self.lockstep.leave(ok);
    }
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.lockstep.leave(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn every_member_learns_whether_all_succeeded() {
        let l = Arc::new(Lockstep::new(3));
        let run = |ok: bool| {
            let l = l.clone();
            tokio::spawn(async move { (l.step(true).await, l.step(ok).await) })
        };
        let (a, b, c) = (run(true), run(true), run(false));
        for r in [a.await.unwrap(), b.await.unwrap(), c.await.unwrap()] {
            assert_eq!(r, (true, false));
        }
    }

    #[tokio::test]
    async fn exactly_one_member_leads_each_round() {
        let l = Arc::new(Lockstep::new(3));
        let run = || {
            let l = l.clone();
            tokio::spawn(async move { (l.step_leading(true).await, l.step_leading(true).await) })
        };
        let (a, b, c) = (run(), run(), run());
        let rounds = [a.await.unwrap(), b.await.unwrap(), c.await.unwrap()];
        for round in [0, 1] {
            let leads = rounds.iter().filter(|r| if round == 0 { r.0.1 } else { r.1.1 }).count();
            assert_eq!(leads, 1, "round {round}: {rounds:?}");
        }
    }

    #[tokio::test]
    async fn a_member_that_leaves_never_blocks_the_others() {
        let l = Arc::new(Lockstep::new(2));
        let l2 = l.clone();
        let waiting = tokio::spawn(async move { l2.step(true).await });
        tokio::task::yield_now().await;
        l.leave(false);
        assert!(
            !waiting.await.unwrap(),
            "the round fails when a member leaves without finishing"
        );
        assert!(l.step(true).await, "alone now, the next round completes at once");
    }
}
