//! Model test: random sequences of Put / Delete / Update / conditional writes
//! (single and grouped), reopens, and reads against the Store and against a
//! `BTreeMap` model; every write outcome, Get, Query (both directions, sort
//! conditions, paging), Scan (segments, paging) and the table statistics
//! must agree. The table has a local index (sort key `v`, KEYS_ONLY) and a
//! global index (partition key `v`, ALL): their Query and Scan results and
//! statistics must match the model's projection of its items (the global
//! index once delivery caught up).

mod common;

use std::collections::BTreeMap;

use common::*;
use partita_expr::{
    CompareOp, Condition, Operand, Path, PathElement, SetValue, SortKeyCondition, UpdateExpression,
};
use partita_model::value::item_size;
use partita_model::{AttributeValue, Item, Projection, ScalarType};
use partita_storage::keys::partition_hash;
use partita_storage::{StorageError, Store, StoreOptions, Visit, WriteCommand, WriteOutcome};
use proptest::prelude::*;

const PKS: [&str; 5] = ["a", "b", "c", "a\u{0}", "ab"];
/// Sort key values in ascending numeric order.
const SKS: [&str; 9] = ["-100", "-1.5", "-1", "0", "0.25", "1", "2", "10", "1e3"];

#[derive(Clone, Debug)]
enum Cond {
    Exists,
    NotExists,
    VEquals(i64),
}

#[derive(Clone, Debug)]
enum Action {
    SetV(i64),
    RemoveV,
    IncrementV(i64),
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        pk: usize,
        sk: usize,
        v: Option<i64>,
        cond: Option<Cond>,
    },
    Delete {
        pk: usize,
        sk: usize,
        cond: Option<Cond>,
    },
    Update {
        pk: usize,
        sk: usize,
        action: Action,
        cond: Option<Cond>,
    },
}

#[derive(Clone, Debug)]
enum Step {
    Write(Op),
    Group(Vec<Op>),
    Reopen,
    Query {
        pk: usize,
        sort: Option<(u8, usize, usize)>,
        forward: bool,
        page: usize,
    },
    Scan {
        total: u32,
        page: usize,
    },
    /// Query the local index (partition key `pk`) or the global one (`v`).
    IndexQuery {
        local: bool,
        pk: usize,
        v: i64,
        forward: bool,
        page: usize,
    },
    IndexScan {
        local: bool,
        total: u32,
        page: usize,
    },
}

fn cond() -> impl Strategy<Value = Option<Cond>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Cond::Exists)),
        1 => Just(Some(Cond::NotExists)),
        1 => (0i64..3).prop_map(|v| Some(Cond::VEquals(v))),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let pk = 0..PKS.len();
    let sk = 0..SKS.len();
    prop_oneof![
        3 => (pk.clone(), sk.clone(), prop::option::of(0i64..3), cond())
            .prop_map(|(pk, sk, v, cond)| Op::Put { pk, sk, v, cond }),
        1 => (pk.clone(), sk.clone(), cond()).prop_map(|(pk, sk, cond)| Op::Delete { pk, sk, cond }),
        2 => (
            pk,
            sk,
            prop_oneof![
                (0i64..3).prop_map(Action::SetV),
                Just(Action::RemoveV),
                (-1i64..2).prop_map(Action::IncrementV)
            ],
            cond()
        )
            .prop_map(|(pk, sk, action, cond)| Op::Update { pk, sk, action, cond }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => op().prop_map(Step::Write),
        2 => prop::collection::vec(op(), 1..6).prop_map(Step::Group),
        1 => Just(Step::Reopen),
        2 => (0..PKS.len(), prop::option::of((0u8..7, 0..SKS.len(), 0..SKS.len())), any::<bool>(), 1usize..5)
            .prop_map(|(pk, sort, forward, page)| Step::Query { pk, sort, forward, page }),
        1 => (1u32..5, 1usize..7).prop_map(|(total, page)| Step::Scan { total, page }),
        2 => (any::<bool>(), 0..PKS.len(), -2i64..4, any::<bool>(), 1usize..5)
            .prop_map(|(local, pk, v, forward, page)| Step::IndexQuery { local, pk, v, forward, page }),
        1 => (any::<bool>(), 1u32..4, 1usize..7)
            .prop_map(|(local, total, page)| Step::IndexScan { local, total, page }),
    ]
}

fn path(name: &str) -> Path {
    Path(vec![PathElement::Attribute(name.into())])
}

fn key(pk: usize, sk: usize) -> Item {
    item(&[("pk", s(PKS[pk])), ("sk", n(SKS[sk]))])
}

fn int(v: i64) -> AttributeValue {
    n(&v.to_string())
}

fn to_condition(c: &Cond) -> Condition {
    match c {
        Cond::Exists => Condition::AttributeExists(path("pk")),
        Cond::NotExists => Condition::AttributeNotExists(path("pk")),
        Cond::VEquals(v) => Condition::Compare(
            Operand::Path(path("v")),
            CompareOp::Eq,
            Operand::Value(int(*v)),
        ),
    }
}

fn to_command(op: &Op) -> WriteCommand {
    match op {
        Op::Put { pk, sk, v, cond } => {
            let mut it = key(*pk, *sk);
            if let Some(v) = v {
                it.insert("v".into(), int(*v));
            }
            WriteCommand::Put {
                item: it,
                condition: cond.as_ref().map(to_condition),
            }
        }
        Op::Delete { pk, sk, cond } => WriteCommand::Delete {
            key: key(*pk, *sk),
            condition: cond.as_ref().map(to_condition),
        },
        Op::Update {
            pk,
            sk,
            action,
            cond,
        } => {
            let mut update = UpdateExpression::default();
            match action {
                Action::SetV(v) => update
                    .set
                    .push((path("v"), SetValue::Operand(Operand::Value(int(*v))))),
                Action::RemoveV => update.remove.push(path("v")),
                Action::IncrementV(d) => update.set.push((
                    path("v"),
                    SetValue::Plus(
                        Box::new(SetValue::Operand(Operand::Path(path("v")))),
                        Box::new(SetValue::Operand(Operand::Value(int(*d)))),
                    ),
                )),
            }
            WriteCommand::Update {
                key: key(*pk, *sk),
                update,
                condition: cond.as_ref().map(to_condition),
            }
        }
    }
}

/// What the model expects a write to return.
#[derive(Debug, PartialEq)]
enum Expected {
    Ok {
        old: Option<Item>,
        new: Option<Item>,
    },
    ConditionFailed(Option<Item>),
    EvalError,
}

#[derive(Default)]
struct Model {
    /// (pk index, sk index) → item; sk index order is numeric order.
    items: BTreeMap<(usize, usize), Item>,
}

impl Model {
    fn v_of(item: Option<&Item>) -> Option<i64> {
        let v = item?.get("v")?;
        (0..10).map(|x| x - 5).find(|x| int(*x) == *v)
    }

    fn apply(&mut self, op: &Op) -> Expected {
        let (pk, sk, cond) = match op {
            Op::Put { pk, sk, cond, .. }
            | Op::Delete { pk, sk, cond }
            | Op::Update { pk, sk, cond, .. } => (*pk, *sk, cond),
        };
        let current = self.items.get(&(pk, sk)).cloned();
        let holds = match cond {
            None => true,
            Some(Cond::Exists) => current.is_some(),
            Some(Cond::NotExists) => current.is_none(),
            Some(Cond::VEquals(v)) => Self::v_of(current.as_ref()) == Some(*v),
        };
        if !holds {
            return Expected::ConditionFailed(current);
        }
        let new = match op {
            Op::Put { v, .. } => {
                let mut it = key(pk, sk);
                if let Some(v) = v {
                    it.insert("v".into(), int(*v));
                }
                Some(it)
            }
            Op::Delete { .. } => None,
            Op::Update { action, .. } => {
                let mut it = current.clone().unwrap_or_else(|| key(pk, sk));
                match action {
                    Action::SetV(v) => {
                        it.insert("v".into(), int(*v));
                    }
                    Action::RemoveV => {
                        it.remove("v");
                    }
                    Action::IncrementV(d) => match Self::v_of(Some(&it)) {
                        Some(v) => {
                            it.insert("v".into(), int(v + d));
                        }
                        None => return Expected::EvalError,
                    },
                }
                Some(it)
            }
        };
        match &new {
            Some(it) => self.items.insert((pk, sk), it.clone()),
            None => self.items.remove(&(pk, sk)),
        };
        Expected::Ok { old: current, new }
    }

    fn stats(&self) -> (u64, u64) {
        (
            self.items.len() as u64,
            self.items.values().map(|i| item_size(i) as u64).sum(),
        )
    }
}

fn observed(r: Result<WriteOutcome, StorageError>) -> Expected {
    match r {
        Ok(o) => Expected::Ok {
            old: o.old,
            new: o.new,
        },
        Err(StorageError::ConditionalCheckFailed { old }) => {
            Expected::ConditionFailed(old.map(|b| *b))
        }
        Err(StorageError::Eval(_)) => Expected::EvalError,
        Err(other) => panic!("unexpected storage error {other}"),
    }
}

fn sort_condition(op: u8, a: usize, b: usize) -> (SortKeyCondition, Box<dyn Fn(usize) -> bool>) {
    let (lo, hi) = (a.min(b), a.max(b));
    match op {
        0 => (SortKeyCondition::Eq(n(SKS[a])), Box::new(move |x| x == a)),
        1 => (SortKeyCondition::Lt(n(SKS[a])), Box::new(move |x| x < a)),
        2 => (SortKeyCondition::Le(n(SKS[a])), Box::new(move |x| x <= a)),
        3 => (SortKeyCondition::Gt(n(SKS[a])), Box::new(move |x| x > a)),
        4 => (SortKeyCondition::Ge(n(SKS[a])), Box::new(move |x| x >= a)),
        _ => (
            SortKeyCondition::Between(n(SKS[lo]), n(SKS[hi])),
            Box::new(move |x| lo <= x && x <= hi),
        ),
    }
}

/// Reads a Query or Scan page by page (`page` items each), resuming after
/// the last key of each page, and returns everything read.
fn paged(
    page: usize,
    mut read: impl FnMut(Option<&Item>, &mut dyn FnMut(Item) -> Visit),
) -> Vec<Item> {
    let mut all: Vec<Item> = Vec::new();
    loop {
        let start = all
            .last()
            .map(|i| item(&[("pk", i["pk"].clone()), ("sk", i["sk"].clone())]));
        let mut got = Vec::new();
        read(start.as_ref(), &mut |i| {
            got.push(i);
            if got.len() == page {
                Visit::Stop
            } else {
                Visit::Continue
            }
        });
        let done = got.len() < page;
        all.extend(got);
        if done {
            return all;
        }
    }
}

/// The table of the model test: pk S, sk N, local index `by_v` (sort key
/// v, KEYS_ONLY), global index `g_v` (partition key v, ALL).
fn model_table(partitions: u32) -> partita_model::TableDefinition {
    let mut def = table_def("t", Some(ScalarType::N), partitions);
    def.local_indexes = vec![index_def(
        "by_v",
        ("pk", ScalarType::S),
        Some(("v", ScalarType::N)),
        Projection::KeysOnly,
        None,
    )];
    def.global_indexes = vec![index_def(
        "g_v",
        ("v", ScalarType::N),
        None,
        Projection::All,
        None,
    )];
    def
}

/// The number in an N value (the model only writes integers).
fn num(v: &AttributeValue) -> i64 {
    match v {
        AttributeValue::N(n) => n.to_string().parse().expect("integer"),
        other => panic!("not a number: {other:?}"),
    }
}

/// The model's items that hold `v`, as (pk, sk index, v, item).
fn indexed(model: &Model) -> Vec<(usize, usize, i64, Item)> {
    model
        .items
        .iter()
        .filter_map(|((p, sk), i)| i.get("v").map(|v| (*p, *sk, num(v), i.clone())))
        .collect()
}

/// Reads an index page by page, resuming after the last item of each page
/// (which holds the table and index keys).
fn paged_index(
    page: usize,
    mut read: impl FnMut(Option<&Item>, &mut dyn FnMut(Item) -> Visit),
) -> Vec<Item> {
    let mut all: Vec<Item> = Vec::new();
    loop {
        let start = all.last().cloned();
        let mut got = Vec::new();
        read(start.as_ref(), &mut |i| {
            got.push(i);
            if got.len() == page {
                Visit::Stop
            } else {
                Visit::Continue
            }
        });
        let done = got.len() < page;
        all.extend(got);
        if done {
            return all;
        }
    }
}

fn check_index_stats(store: &Store, model: &Model, index: &str) {
    let entries = indexed(model);
    assert_eq!(
        store.index_stats("t", index).unwrap(),
        (
            entries.len() as u64,
            entries.iter().map(|e| item_size(&e.3) as u64).sum()
        ),
        "statistics of {index}"
    );
}

fn run(steps: Vec<Step>, partitions: u32) {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Store::open(
            dir.path(),
            StoreOptions {
                sync: false,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let mut store = open();
    store.create_table(model_table(partitions)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut model = Model::default();
    for step in steps {
        match step {
            Step::Write(op) => {
                let got = observed(runtime.block_on(store.write("t", to_command(&op))));
                assert_eq!(got, model.apply(&op), "{op:?}");
            }
            Step::Group(ops) => {
                let commands = ops
                    .iter()
                    .map(|op| ("t".to_string(), to_command(op)))
                    .collect();
                let results = runtime.block_on(store.write_many(commands));
                for (op, r) in ops.iter().zip(results) {
                    assert_eq!(observed(r), model.apply(op), "{op:?} in a group");
                }
            }
            Step::Reopen => {
                drop(store);
                store = open();
            }
            Step::Query {
                pk,
                sort,
                forward,
                page,
            } => {
                let cond = sort.map(|(op, a, b)| sort_condition(op, a, b));
                let mut expected: Vec<Item> = model
                    .items
                    .iter()
                    .filter(|((p, s), _)| *p == pk && cond.as_ref().is_none_or(|(_, f)| f(*s)))
                    .map(|(_, i)| i.clone())
                    .collect();
                if !forward {
                    expected.reverse();
                }
                let got = paged(page, |start, visit| {
                    store
                        .query(
                            "t",
                            &s(PKS[pk]),
                            cond.as_ref().map(|(c, _)| c),
                            forward,
                            start,
                            visit,
                        )
                        .unwrap()
                });
                assert_eq!(
                    got, expected,
                    "query pk={pk} sort={sort:?} forward={forward} page={page}"
                );
            }
            Step::Scan { total, page } => {
                let mut expected: Vec<((u64, String, usize), Item)> = model
                    .items
                    .iter()
                    .map(|((p, sk), i)| {
                        (
                            (
                                partition_hash(&s(PKS[*p])).unwrap(),
                                PKS[*p].to_string(),
                                *sk,
                            ),
                            i.clone(),
                        )
                    })
                    .collect();
                expected.sort_by(|a, b| a.0.cmp(&b.0));
                let expected: Vec<Item> = expected.into_iter().map(|(_, i)| i).collect();
                let mut got = Vec::new();
                for segment in 0..total {
                    got.extend(paged(page, |start, visit| {
                        store.scan("t", segment, total, start, visit).unwrap()
                    }));
                }
                assert_eq!(got, expected, "scan total={total} page={page}");
            }
            Step::IndexQuery {
                local,
                pk,
                v,
                forward,
                page,
            } => {
                let mut expected: Vec<(String, usize, i64, Item)> = indexed(&model)
                    .into_iter()
                    .filter(|(p, _, value, _)| if local { *p == pk } else { *value == v })
                    .map(|(p, sk, value, i)| (PKS[p].to_string(), sk, value, i))
                    .collect();
                // Local: by v, then sort key. Global: by table key.
                if local {
                    expected.sort_by_key(|a| (a.2, a.1));
                } else {
                    expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                    wait_delivered(&store, "t");
                }
                let mut expected: Vec<Item> = expected.into_iter().map(|e| e.3).collect();
                if !forward {
                    expected.reverse();
                }
                let (index, hash) = if local {
                    ("by_v", s(PKS[pk]))
                } else {
                    ("g_v", int(v))
                };
                let got = paged_index(page, |start, visit| {
                    store
                        .query_index("t", index, &hash, None, forward, start, visit)
                        .unwrap()
                });
                assert_eq!(
                    got, expected,
                    "{index} query pk={pk} v={v} forward={forward} page={page}"
                );
            }
            Step::IndexScan { local, total, page } => {
                let mut expected: Vec<((u64, String, i64, usize), Item)> = indexed(&model)
                    .into_iter()
                    .map(|(p, sk, v, i)| {
                        let order = if local {
                            (
                                partition_hash(&s(PKS[p])).unwrap(),
                                PKS[p].to_string(),
                                v,
                                sk,
                            )
                        } else {
                            (partition_hash(&int(v)).unwrap(), PKS[p].to_string(), v, sk)
                        };
                        (order, i)
                    })
                    .collect();
                if !local {
                    // Same v: by table key (pk, then sort key).
                    expected.sort_by(|a, b| {
                        (a.0 .0, a.0 .2, &a.0 .1, a.0 .3).cmp(&(b.0 .0, b.0 .2, &b.0 .1, b.0 .3))
                    });
                    wait_delivered(&store, "t");
                } else {
                    expected.sort_by(|a, b| a.0.cmp(&b.0));
                }
                let expected: Vec<Item> = expected.into_iter().map(|(_, i)| i).collect();
                let index = if local { "by_v" } else { "g_v" };
                let mut got = Vec::new();
                for segment in 0..total {
                    got.extend(paged_index(page, |start, visit| {
                        store
                            .scan_index("t", index, segment, total, start, visit)
                            .unwrap()
                    }));
                }
                assert_eq!(got, expected, "{index} scan total={total} page={page}");
                check_index_stats(&store, &model, index);
            }
        }
        check_index_stats(&store, &model, "by_v");
        for ((pk, sk), it) in &model.items {
            assert_eq!(store.get("t", &key(*pk, *sk)).unwrap().as_ref(), Some(it));
        }
        assert_eq!(store.table_stats("t").unwrap(), model.stats());
    }
    for pk in 0..PKS.len() {
        for sk in 0..SKS.len() {
            assert_eq!(
                store.get("t", &key(pk, sk)).unwrap().as_ref(),
                model.items.get(&(pk, sk))
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model(steps in prop::collection::vec(step(), 1..60), partitions in 1u32..4) {
        run(steps, partitions);
    }
}
