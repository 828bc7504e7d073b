//! A linearizability checker for one read/write register, complete: it
//! accepts a history exactly when some order of its operations respects
//! real time and register semantics.
//!
//! The search is Wing and Gong's, with Lowe's memoization (as in Knossos
//! and Porcupine): walk the time-ordered list of call and return events;
//! at a call, try to linearize that operation next (a read must return the
//! register's current value, a write sets it) unless the same set of
//! linearized operations with the same register value was already
//! explored; at the return of an operation not yet linearized, undo the
//! last choice. The history is linearizable when every completed operation
//! has been placed.
//!
//! What a history holds:
//! - every acknowledged operation, with its real-time interval [start, end]
//!   (microseconds; two operations are ordered only when one ended strictly
//!   before the other began);
//! - writes whose outcome is unknown (an error or a timeout): they may take
//!   effect at any time after their start, or never, so they have no end
//!   and need not be placed;
//! - no failed reads: a read that got no answer has no effect and says
//!   nothing.
//!
//! The register starts absent (`None`). Values need not be unique, though
//! the tests write unique values (which also makes the diagnostics name
//! the write a read saw).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

/// One operation of a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Write(u64),
    /// A read and the value it returned.
    Read(Option<u64>),
}

/// An operation with its real-time interval (`end: None`: outcome unknown,
/// writes only).
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub op: Op,
    pub start: u128,
    pub end: Option<u128>,
}

/// A concurrent history being recorded.
pub struct History {
    origin: Instant,
    entries: Mutex<Vec<Entry>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            origin: Instant::now(),
            entries: Mutex::new(Vec::new()),
        }
    }
}

impl History {
    /// Microseconds since the history began.
    pub fn now(&self) -> u128 {
        self.origin.elapsed().as_micros()
    }

    /// Records a write; `end` is None when its outcome is unknown.
    pub fn write(&self, value: u64, start: u128, end: Option<u128>) {
        self.push(Entry {
            op: Op::Write(value),
            start,
            end,
        });
    }

    /// Records an answered read.
    pub fn read(&self, value: Option<u64>, start: u128, end: u128) {
        self.push(Entry {
            op: Op::Read(value),
            start,
            end: Some(end),
        });
    }

    fn push(&self, entry: Entry) {
        self.entries.lock().unwrap().push(entry);
    }

    /// Returns (answered reads, acknowledged writes) that began at or
    /// after `since`: the progress made after a fault.
    pub fn acknowledged_since(&self, since: u128) -> (usize, usize) {
        let entries = self.entries.lock().unwrap();
        let count = |read: bool| {
            entries
                .iter()
                .filter(|e| e.start >= since && e.end.is_some())
                .filter(|e| matches!(e.op, Op::Read(_)) == read)
                .count()
        };
        (count(true), count(false))
    }

    /// Checks the history; the error describes where no linearization
    /// exists.
    pub fn check(&self) -> Result<(), String> {
        check(&self.entries.lock().unwrap())
    }
}

/// One event of the search list: the call or the return of an operation.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

/// Returns Ok when `history` is linearizable (see the module docs).
pub fn check(history: &[Entry]) -> Result<(), String> {
    let n = history.len();
    // Events in time order; at equal times calls come first (operations
    // that touch are concurrent); unknown outcomes return after everything.
    let mut events: Vec<(u128, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in history.iter().enumerate() {
        events.push((e.start, true, i));
        events.push((e.end.unwrap_or(u128::MAX), false, i));
    }
    events.sort_by_key(|&(t, is_call, i)| (t, !is_call, i));
    let events: Vec<Event> = events
        .into_iter()
        .map(|(_, is_call, op)| Event { op, is_call })
        .collect();
    // A doubly linked list over the events, with a sentinel head at index
    // `len` (NIL ends it); `call_of[op]` and `return_of[op]` locate an
    // operation's events.
    const NIL: usize = usize::MAX;
    let len = events.len();
    let head = len;
    let mut next: Vec<usize> = (0..=len)
        .map(|i| match i {
            i if i == head => {
                if len > 0 {
                    0
                } else {
                    NIL
                }
            }
            i if i + 1 < len => i + 1,
            _ => NIL,
        })
        .collect();
    let mut prev: Vec<usize> = (0..=len)
        .map(|i| if i == 0 || i == head { head } else { i - 1 })
        .collect();
    let mut call_of = vec![0; n];
    let mut return_of = vec![0; n];
    for (i, e) in events.iter().enumerate() {
        if e.is_call {
            call_of[e.op] = i;
        } else {
            return_of[e.op] = i;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        let (p, q) = (prev[i], next[i]);
        next[p] = q;
        if q != NIL {
            prev[q] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        let (p, q) = (prev[i], next[i]);
        next[p] = i;
        if q != NIL {
            prev[q] = i;
        }
    };

    let mut completed_left = history.iter().filter(|e| e.end.is_some()).count();
    let mut linearized = vec![0u64; n.div_ceil(64)];
    let mut state: Option<u64> = None;
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    // (operation, register value before it)
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut deepest = 0usize;
    let mut cursor = next[head];
    while completed_left > 0 {
        let Some(event) = (cursor != NIL).then(|| events[cursor]) else {
            // Only unknown-outcome writes remain unplaced before the end:
            // impossible while a completed operation is left (its return
            // would have been met), kept as a guard.
            return Err("internal: the event list ended early".into());
        };
        if event.is_call {
            let op = event.op;
            let after = match history[op].op {
                Op::Write(v) => Some(Some(v)),
                Op::Read(v) => (v == state).then_some(state),
            };
            if let Some(new_state) = after {
                linearized[op / 64] |= 1 << (op % 64);
                if seen.insert((linearized.clone(), new_state)) {
                    stack.push((op, state));
                    state = new_state;
                    unlink(&mut next, &mut prev, call_of[op]);
                    unlink(&mut next, &mut prev, return_of[op]);
                    if history[op].end.is_some() {
                        completed_left -= 1;
                    }
                    deepest = deepest.max(stack.len());
                    cursor = next[head];
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            cursor = next[cursor];
        } else {
            // The return of an operation not placed yet: undo the last choice.
            let Some((op, before)) = stack.pop() else {
                let stuck = &history[event.op];
                return Err(format!(
                    "not linearizable: no order places {stuck:?} (at most {deepest} of {n} operations placed)"
                ));
            };
            linearized[op / 64] &= !(1 << (op % 64));
            state = before;
            relink(&mut next, &mut prev, return_of[op]);
            relink(&mut next, &mut prev, call_of[op]);
            if history[op].end.is_some() {
                completed_left += 1;
            }
            cursor = next[call_of[op]];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(value: u64, start: u128, end: u128) -> Entry {
        Entry {
            op: Op::Write(value),
            start,
            end: Some(end),
        }
    }

    /// A write whose outcome is unknown.
    fn wu(value: u64, start: u128) -> Entry {
        Entry {
            op: Op::Write(value),
            start,
            end: None,
        }
    }

    fn r(value: Option<u64>, start: u128, end: u128) -> Entry {
        Entry {
            op: Op::Read(value),
            start,
            end: Some(end),
        }
    }

    #[test]
    fn known_good_histories_are_accepted() {
        let good: Vec<(&str, Vec<Entry>)> = vec![
            ("empty", vec![]),
            ("a read of nothing", vec![r(None, 0, 1)]),
            (
                "sequential",
                vec![
                    w(1, 0, 10),
                    r(Some(1), 11, 12),
                    w(2, 13, 14),
                    r(Some(2), 15, 16),
                ],
            ),
            (
                "a read concurrent with a write sees the old value",
                vec![w(1, 0, 10), w(2, 20, 30), r(Some(1), 25, 26)],
            ),
            (
                "a read concurrent with a write sees the new value",
                vec![w(1, 0, 10), w(2, 20, 30), r(Some(2), 21, 22)],
            ),
            (
                "concurrent writes in either order",
                vec![
                    w(1, 0, 10),
                    w(2, 5, 15),
                    r(Some(1), 20, 21),
                    r(Some(1), 22, 23),
                ],
            ),
            (
                "an unknown write that never applied",
                vec![
                    w(1, 0, 10),
                    wu(2, 11),
                    r(Some(1), 50, 51),
                    r(Some(1), 60, 61),
                ],
            ),
            (
                "an unknown write that applied late",
                vec![
                    w(1, 0, 10),
                    wu(2, 11),
                    r(Some(1), 50, 51),
                    r(Some(2), 60, 61),
                ],
            ),
            (
                "touching intervals are concurrent",
                vec![w(1, 0, 10), r(None, 10, 12)],
            ),
            (
                "the same value written twice",
                vec![w(1, 0, 10), w(2, 11, 12), w(1, 13, 14), r(Some(1), 15, 16)],
            ),
            (
                "reads split across a slow write",
                vec![
                    w(1, 0, 5),
                    w(2, 10, 100),
                    r(Some(1), 20, 21),
                    r(Some(2), 30, 31),
                    r(Some(2), 40, 41),
                ],
            ),
        ];
        for (name, history) in good {
            assert_eq!(check(&history), Ok(()), "{name}");
        }
    }

    #[test]
    fn known_bad_histories_are_rejected() {
        let bad: Vec<(&str, Vec<Entry>)> = vec![
            (
                // The case: a deposed leader answers 1 after 2 was read.
                "a stale read",
                vec![
                    w(2, 0, 10),
                    w(1, 5, 20),
                    r(Some(1), 25, 26),
                    r(Some(2), 30, 31),
                ],
            ),
            (
                "a lost write",
                vec![w(1, 0, 10), w(2, 11, 20), r(Some(1), 30, 31)],
            ),
            ("a lost first write", vec![w(1, 0, 10), r(None, 11, 12)]),
            (
                "a value never written",
                vec![w(1, 0, 10), r(Some(9), 11, 12)],
            ),
            (
                "a read that goes back in time",
                vec![
                    w(1, 0, 10),
                    w(2, 5, 30),
                    r(Some(2), 12, 13),
                    r(Some(1), 14, 15),
                ],
            ),
            (
                "a read from the future",
                vec![r(Some(1), 0, 5), w(1, 10, 20)],
            ),
            (
                "an unknown write seen, then unseen",
                vec![
                    w(1, 0, 10),
                    wu(2, 11),
                    r(Some(2), 50, 51),
                    r(Some(1), 60, 61),
                ],
            ),
            (
                "absent again after a value",
                vec![wu(1, 0), r(Some(1), 5, 6), r(None, 7, 8)],
            ),
        ];
        for (name, history) in bad {
            assert!(check(&history).is_err(), "{name} was accepted");
        }
    }

    /// A tiny deterministic generator (no dependency for one test).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// The definition, by brute force: some permutation of the operations
    /// (completed ones, and any subset of the unknown writes) respects real
    /// time and register semantics.
    fn brute_force(history: &[Entry]) -> bool {
        fn search(history: &[Entry], placed: &mut Vec<bool>, state: Option<u64>) -> bool {
            if history
                .iter()
                .zip(placed.iter())
                .all(|(e, &p)| p || e.end.is_none())
            {
                return true;
            }
            for i in 0..history.len() {
                if placed[i] {
                    continue;
                }
                // Every operation that ended before i began must be placed.
                let ready = history.iter().enumerate().all(|(j, e)| {
                    placed[j] || j == i || e.end.is_none_or(|end| end >= history[i].start)
                });
                if !ready {
                    continue;
                }
                let next = match history[i].op {
                    Op::Write(v) => Some(v),
                    Op::Read(v) if v == state => state,
                    Op::Read(_) => continue,
                };
                placed[i] = true;
                if search(history, placed, next) {
                    return true;
                }
                placed[i] = false;
            }
            false
        }
        search(history, &mut vec![false; history.len()], None)
    }

    /// Random small histories, good and bad, judged alike by the checker
    /// and by the brute-force definition.
    #[test]
    fn agrees_with_brute_force_on_random_small_histories() {
        let mut rng = Rng(7);
        let (mut good, mut bad) = (0, 0);
        for _ in 0..4000 {
            let ops = 1 + rng.below(6) as usize;
            let history: Vec<Entry> = (0..ops)
                .map(|_| {
                    let start = u128::from(rng.below(20));
                    let end = start + u128::from(rng.below(10));
                    match rng.below(7) {
                        0 => wu(1 + rng.below(3), start),
                        1..=3 => w(1 + rng.below(3), start, end),
                        _ => {
                            let v = rng.below(4);
                            r((v > 0).then_some(v), start, end)
                        }
                    }
                })
                .collect();
            let expected = brute_force(&history);
            assert_eq!(check(&history).is_ok(), expected, "{history:?}");
            if expected {
                good += 1;
            } else {
                bad += 1;
            }
        }
        assert!(good > 500 && bad > 500, "{good} good, {bad} bad");
    }

    /// A long history of a real register with concurrent clients is
    /// accepted, and a single stale read planted in it is found.
    #[test]
    fn long_histories_are_checked_and_a_planted_stale_read_is_found() {
        let mut rng = Rng(11);
        // 6 clients, each issuing operations one after another; each
        // operation takes effect at an instant inside its interval, and the
        // register applies the effects in time order.
        let mut ops: Vec<(u128, Entry)> = Vec::new();
        let mut value = 1;
        for _client in 0..6 {
            let mut t = u128::from(rng.below(10));
            for _ in 0..500 {
                let start = t;
                let effect = start + u128::from(rng.below(20));
                let end = effect + u128::from(rng.below(20));
                t = end + 1 + u128::from(rng.below(5));
                let op = if rng.below(2) == 0 {
                    value += 1;
                    Op::Write(value)
                } else {
                    Op::Read(None)
                };
                ops.push((
                    effect,
                    Entry {
                        op,
                        start,
                        end: Some(end),
                    },
                ));
            }
        }
        ops.sort_by_key(|(effect, _)| *effect);
        let mut register = None;
        let mut history: Vec<Entry> = ops
            .into_iter()
            .map(|(_, mut e)| {
                match e.op {
                    Op::Write(v) => register = Some(v),
                    Op::Read(_) => e.op = Op::Read(register),
                }
                e
            })
            .collect();
        assert_eq!(check(&history), Ok(()));
        // A read, long after the end, of a value overwritten long before.
        let last = history.iter().filter_map(|e| e.end).max().unwrap();
        history.push(r(Some(2), last + 10, last + 11));
        assert!(check(&history).is_err());
    }
}
