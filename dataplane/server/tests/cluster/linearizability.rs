//! A linearizability checker for one register with unique written values.
//!
//! Each operation has a real-time interval [start, end] (a write whose
//! outcome is unknown — error or timeout — has no end: it may take effect
//! at any time after its start, or never). Because every written value is
//! unique, a read names the write it reads from, and a history is
//! linearizable only if none of these hold (each is a witness of a
//! violation):
//!
//! 1. a read returns a value whose write started after the read ended
//!    (read from the future);
//! 2. a read returns value v although another write w' began after v's
//!    write ended and ended before the read began (v was surely
//!    overwritten);
//! 3. two reads, r1 entirely before r2, return v1 and v2 where v2's write
//!    ended before v1's write began (time went backwards);
//! 4. a read returns "absent" although some write ended before it began;
//! 5. a read returns a value nobody wrote.
//!
//! These conditions are the standard reads-from checks for unique-value
//! registers; the unit tests below show each one firing.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Write {
    value: u64,
    start: u128,
    end: Option<u128>,
}

#[derive(Clone, Copy, Debug)]
struct Read {
    value: Option<u64>,
    start: u128,
    end: u128,
}

pub struct History {
    origin: Instant,
    writes: Mutex<Vec<Write>>,
    reads: Mutex<Vec<Read>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            origin: Instant::now(),
            writes: Mutex::new(Vec::new()),
            reads: Mutex::new(Vec::new()),
        }
    }
}

impl History {
    /// Microseconds since the history began.
    pub fn now(&self) -> u128 {
        self.origin.elapsed().as_micros()
    }

    pub fn write(&self, value: u64, start: u128, end: Option<u128>) {
        self.writes
            .lock()
            .unwrap()
            .push(Write { value, start, end });
    }

    pub fn read(&self, value: Option<u64>, start: u128, end: u128) {
        self.reads.lock().unwrap().push(Read { value, start, end });
    }

    pub fn counts(&self) -> (usize, usize) {
        (
            self.reads.lock().unwrap().len(),
            self.writes.lock().unwrap().len(),
        )
    }

    /// Returns the first violation found.
    pub fn check(&self) -> Result<(), String> {
        let writes = self.writes.lock().unwrap().clone();
        let reads = self.reads.lock().unwrap().clone();
        check(&writes, &reads)
    }
}

fn check(writes: &[Write], reads: &[Read]) -> Result<(), String> {
    let by_value: std::collections::HashMap<u64, Write> =
        writes.iter().map(|w| (w.value, *w)).collect();
    let source = |r: &Read| -> Result<Option<Write>, String> {
        match r.value {
            None => Ok(None),
            Some(v) => by_value
                .get(&v)
                .copied()
                .map(Some)
                .ok_or_else(|| format!("read {r:?} returned a value nobody wrote")),
        }
    };
    for r in reads {
        match source(r)? {
            None => {
                if let Some(w) = writes.iter().find(|w| w.end.is_some_and(|e| e < r.start)) {
                    return Err(format!("read {r:?} saw nothing after write {w:?} ended"));
                }
            }
            Some(w) => {
                if w.start > r.end {
                    return Err(format!("read {r:?} returned the future write {w:?}"));
                }
                if let Some(w_end) = w.end {
                    if let Some(o) = writes.iter().find(|o| {
                        o.value != w.value && o.start > w_end && o.end.is_some_and(|e| e < r.start)
                    }) {
                        return Err(format!(
                            "read {r:?} returned {w:?}, overwritten by {o:?} before the read"
                        ));
                    }
                }
            }
        }
    }
    for r1 in reads {
        let Some(w1) = source(r1)? else { continue };
        for r2 in reads.iter().filter(|r2| r1.end < r2.start) {
            let Some(w2) = source(r2)? else {
                return Err(format!(
                    "read {r2:?} saw nothing after read {r1:?} saw {w1:?}"
                ));
            };
            if w2.value != w1.value && w2.end.is_some_and(|e| e < w1.start) {
                return Err(format!(
                    "read {r2:?} returned the older {w2:?} after read {r1:?} returned {w1:?}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn checker_accepts_a_linearizable_history_and_finds_each_violation() {
    let w = |value, start, end| Write { value, start, end };
    let r = |value, start, end| Read { value, start, end };
    let writes = [w(1, 0, Some(10)), w(2, 20, Some(30)), w(3, 40, None)];
    // Linearizable: overlapping read may see either; failed write may or may not apply.
    assert!(check(
        &writes,
        &[
            r(None, 0, 5),
            r(Some(1), 12, 18),
            r(Some(2), 25, 35),
            r(Some(2), 45, 50),
            r(Some(3), 60, 70)
        ]
    )
    .is_ok());
    // 1: from the future.
    assert!(check(&writes, &[r(Some(2), 11, 15)]).is_err());
    // 2: overwritten before the read.
    assert!(check(&writes, &[r(Some(1), 35, 38)]).is_err());
    // 3: time went backwards.
    assert!(check(&writes, &[r(Some(2), 25, 35), r(Some(1), 36, 38)]).is_err());
    // 4: absent after a completed write.
    assert!(check(&writes, &[r(None, 15, 16)]).is_err());
    // 5: never written.
    assert!(check(&writes, &[r(Some(9), 15, 16)]).is_err());
}
