//! Randomized test: random inserts, updates, deletes, savepoints, commits and
//! rollbacks against `Database` and a naive model (a map of rows), checking
//! rows, every index and the write-set agree after each step. Fixed seeds;
//! a failure names its seed and step.

use super::*;
use crate::types::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound::{self, Excluded, Included, Unbounded};

/// xorshift64*: small, seeded, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

type Model = BTreeMap<RowId, Row>;

const IDS: i64 = 24;
const TEXTS: [&str; 6] = ["", "x", "y", "xy", "yx", "xyz"];

/// `m(id INTEGER PRIMARY KEY, a SMALLINT, b VARCHAR(2))` with indexes
/// 0 pk hash (id), 1 ordered (a, b), 2 unique ordered (b), 3 hash (a),
/// 4 ordered (a), 5 ordered (id), 6 hash (b): every store shape, integer
/// single-column ones included.
fn model_db() -> (Database, TableId) {
    let col = |name: &str, ty, nullable| ColumnDef {
        name: name.into(),
        ty,
        nullable,
        default: None,
    };
    let idx = |name: &str, columns: Vec<usize>, unique, kind| IndexDef {
        name: name.into(),
        columns,
        unique,
        kind,
    };
    let schema = TableSchema {
        name: "m".into(),
        columns: vec![
            col("id", DataType::Integer, false),
            col("a", DataType::SmallInt, true),
            col("b", DataType::Varchar(Some(2)), true),
        ],
        primary_key: Some(0),
        indexes: vec![
            primary_key_index("m_pkey", vec![0]),
            idx("m_ab", vec![1, 2], false, IndexKind::Ordered),
            idx("m_b", vec![2], true, IndexKind::Ordered),
            idx("m_a", vec![1], false, IndexKind::Hash),
            idx("m_a_ord", vec![1], false, IndexKind::Ordered),
            idx("m_id_range", vec![0], false, IndexKind::Ordered),
            idx("m_b_hash", vec![2], false, IndexKind::Hash),
            idx("m_id_hash", vec![0], true, IndexKind::Hash),
        ],
        partition_column: None,
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    let mut db = Database::new();
    let t = db.create_table(schema).unwrap();
    (db, t)
}

fn random_a(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 | 1 => Value::Null,
        2 => Value::Int(40_000),
        _ => Value::Int(rng.below(6) as i64 - 3),
    }
}

fn random_b(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => Value::Null,
        _ => Value::text(TEXTS[rng.below(TEXTS.len() as u64) as usize]),
    }
}

fn random_row(rng: &mut Rng) -> Row {
    let id = Value::Int(rng.below(IDS as u64) as i64);
    vec![id, random_a(rng), random_b(rng)].into_boxed_slice()
}

/// The error the model expects for writing `row` over `except`, if any.
fn expected_error(model: &Model, row: &Row, except: Option<RowId>) -> Option<&'static str> {
    if matches!(row[1], Value::Int(a) if a > i64::from(i16::MAX)) {
        return Some("range");
    }
    if matches!(&row[2], Value::Text(s) if s.chars().count() > 2) {
        return Some("long");
    }
    let others = || {
        model
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .map(|(_, r)| r)
    };
    if others().any(|r| r[0] == row[0]) {
        return Some("m_pkey");
    }
    if !row[2].is_null() && others().any(|r| r[2] == row[2]) {
        return Some("m_b");
    }
    None
}

fn error_name(e: &StorageError) -> &'static str {
    match e {
        StorageError::OutOfRange { .. } => "range",
        StorageError::TooLong { .. } => "long",
        StorageError::Unique { constraint, .. } if constraint == "m_pkey" => "m_pkey",
        StorageError::Unique { constraint, .. } if constraint == "m_b" => "m_b",
        StorageError::NoSuchRow(_) => "no row",
        _ => "other",
    }
}

fn key(r: &Row) -> [Value; 2] {
    [r[1].clone(), r[2].clone()]
}

/// Rows of `model` in (a, b) order within the bounds, by brute force.
fn model_range(model: &Model, lower: Bound<&[Value]>, upper: Bound<&[Value]>) -> Vec<RowId> {
    let full = matches!((lower, upper), (Unbounded, Unbounded));
    let cmp = |k: &[Value; 2], b: &[Value]| k[..b.len()].cmp(b);
    let mut hits: Vec<(&Row, RowId)> = model
        .iter()
        .filter(|(_, r)| full || !(r[1].is_null() || r[2].is_null()))
        .filter(|(_, r)| match lower {
            Unbounded => true,
            Included(b) => cmp(&key(r), b) != Ordering::Less,
            Excluded(b) => cmp(&key(r), b) == Ordering::Greater,
        })
        .filter(|(_, r)| match upper {
            Unbounded => true,
            Included(b) => cmp(&key(r), b) != Ordering::Greater,
            Excluded(b) => cmp(&key(r), b) == Ordering::Less,
        })
        .map(|(id, r)| (r, *id))
        .collect();
    hits.sort_by(|x, y| key(x.0).cmp(&key(y.0)).then(x.1.cmp(&y.1)));
    hits.into_iter().map(|h| h.1).collect()
}

fn random_bound(rng: &mut Rng) -> Vec<Value> {
    let mut b = vec![Value::Int(rng.below(6) as i64 - 3)];
    if rng.chance(2) {
        b.push(Value::text(TEXTS[rng.below(5) as usize]));
    }
    b
}

/// A probe for an integer column: mostly near the stored values, sometimes
/// of another kind (the SQL layer may probe with DOUBLE, DECIMAL, text).
fn random_probe(rng: &mut Rng) -> Value {
    let i = rng.below(8) as i64 - 4;
    match rng.below(12) {
        0 => Value::Double(i as f64 + 0.5),
        1 => Value::Double(i as f64),
        2 => Value::Decimal(rust_decimal::Decimal::new(i * 10 + 5, 1)),
        3 => Value::Decimal(rust_decimal::Decimal::new(i * 100, 2)),
        4 => Value::Double([f64::NAN, 1e300, -1e300, -0.0][rng.below(4) as usize]),
        5 => [Value::text("x"), Value::Bool(true), Value::Null][rng.below(3) as usize].clone(),
        _ => Value::Int(i),
    }
}

/// A single-column bound as the SQL layer may pass it: usually one value,
/// sometimes an empty or over-long prefix.
fn random_probe_bound(rng: &mut Rng) -> Bound<Vec<Value>> {
    let key = match rng.below(8) {
        0 => vec![],
        1 => vec![random_probe(rng), Value::Int(0)],
        _ => vec![random_probe(rng)],
    };
    match rng.below(3) {
        0 => Unbounded,
        1 => Included(key),
        _ => Excluded(key),
    }
}

/// Rows of `model` whose column `col` lies within the (prefix) bounds, in
/// (value, RowId) order, by brute force over `Value::total_cmp`.
fn model_range1(
    model: &Model,
    col: usize,
    lower: Bound<&[Value]>,
    upper: Bound<&[Value]>,
) -> Vec<RowId> {
    let full = matches!((lower, upper), (Unbounded, Unbounded));
    if [lower, upper]
        .iter()
        .any(|b| matches!(b, Included(k) | Excluded(k) if k.iter().any(Value::is_null)))
    {
        return Vec::new();
    }
    // Against a one-column key, a prefix compares on its first value; an
    // empty prefix is below (Included lower) or above (Included upper) all.
    let ok = |v: &Value, b: Bound<&[Value]>, want: Ordering| match b {
        Unbounded => true,
        Included([]) => true,
        Excluded([]) => false,
        Included([k, ..]) => v.total_cmp(k) != want.reverse(),
        Excluded([k, ..]) => v.total_cmp(k) == want,
    };
    let mut hits: Vec<(&Value, RowId)> = model
        .iter()
        .map(|(id, r)| (&r[col], *id))
        .filter(|(v, _)| full || !v.is_null())
        .filter(|(v, _)| ok(v, lower, Ordering::Greater) && ok(v, upper, Ordering::Less))
        .collect();
    hits.sort_by(|x, y| x.0.total_cmp(y.0).then(x.1.cmp(&y.1)));
    hits.into_iter().map(|h| h.1).collect()
}

/// The integer single-column indexes (3 hash a, 4 ordered a, 5 ordered id,
/// 0 hash id) against brute force, probed with values of every kind.
fn check_int_indexes(tb: &Table, model: &Model, rng: &mut Rng, at: &str) {
    let with = |col: usize, v: &Value| -> Vec<RowId> {
        model
            .iter()
            .filter(|(_, r)| !v.is_null() && r[col] == *v)
            .map(|(id, _)| *id)
            .collect()
    };
    for _ in 0..4 {
        let p = random_probe(rng);
        let key = std::slice::from_ref(&p);
        for (ix, col) in [(0, 0), (3, 1), (4, 1), (5, 0), (7, 0)] {
            let want = with(col, &p);
            assert_eq!(tb.index_lookup(ix, key), want, "{at}: ix {ix} = {p:?}");
            let got = tb.index_get(ix, key);
            assert_eq!(got, want.first().copied(), "{at}: ix {ix} get {p:?}");
        }
    }
    for (ix, col) in [(4, 1), (5, 0), (3, 1), (6, 2), (0, 0)] {
        let full = tb.index_range(ix, Unbounded, Unbounded);
        let mut want = model_range1(model, col, Unbounded, Unbounded);
        if ix == 3 || ix == 6 {
            // Hash indexes hold no NULL keys.
            want.retain(|id| !model[id][col].is_null());
        }
        assert_eq!(full, want, "{at}: ix {ix} full");
    }
    for _ in 0..4 {
        let (lo, hi) = (random_probe_bound(rng), random_probe_bound(rng));
        let (lo, hi) = (
            lo.as_ref().map(Vec::as_slice),
            hi.as_ref().map(Vec::as_slice),
        );
        for (ix, col) in [(4, 1), (5, 0), (3, 1), (0, 0)] {
            if (ix == 3 || ix == 0) && matches!((lo, hi), (Unbounded, Unbounded)) {
                continue; // checked above, without NULLs
            }
            assert_eq!(
                tb.index_range(ix, lo, hi),
                model_range1(model, col, lo, hi),
                "{at}: ix {ix} range {lo:?}..{hi:?}"
            );
        }
    }
}

fn check_agree(db: &Database, t: TableId, model: &Model, rng: &mut Rng, at: &str) {
    let tb = db.table(t).unwrap();
    assert_eq!(tb.len(), model.len(), "{at}: len");
    tb.check_arena();
    let rows: Vec<(RowId, Row)> = tb.scan().map(|(id, r)| (id, Row::from(r))).collect();
    let want: Vec<(RowId, Row)> = model.iter().map(|(id, r)| (*id, r.clone())).collect();
    assert_eq!(rows, want, "{at}: rows");
    let with = |col: usize, v: &Value| -> Vec<RowId> {
        model
            .iter()
            .filter(|(_, r)| !v.is_null() && r[col] == *v)
            .map(|(id, _)| *id)
            .collect()
    };
    for id in 0..IDS {
        let v = Value::Int(id);
        assert_eq!(
            tb.index_lookup(0, std::slice::from_ref(&v)),
            with(0, &v),
            "{at}: pk {id}"
        );
        assert_eq!(
            tb.index_get(0, std::slice::from_ref(&v)),
            with(0, &v).first().copied(),
            "{at}: pk get"
        );
    }
    for a in [Value::Null, Value::Int(-3), Value::Int(0), Value::Int(2)] {
        assert_eq!(
            tb.index_lookup(3, std::slice::from_ref(&a)),
            with(1, &a),
            "{at}: a = {a}"
        );
    }
    for b in TEXTS.iter().map(|s| Value::text(s)).chain([Value::Null]) {
        assert_eq!(
            tb.index_lookup(2, std::slice::from_ref(&b)),
            with(2, &b),
            "{at}: b = {b}"
        );
    }
    for b in TEXTS.iter().map(|s| Value::text(s)).chain([Value::Null]) {
        assert_eq!(
            tb.index_lookup(6, std::slice::from_ref(&b)),
            with(2, &b),
            "{at}: b hash = {b}"
        );
    }
    check_int_indexes(tb, model, rng, at);
    assert_eq!(
        tb.index_range(1, Unbounded, Unbounded),
        model_range(model, Unbounded, Unbounded),
        "{at}: full"
    );
    for _ in 0..4 {
        let (lo, hi) = (random_bound(rng), random_bound(rng));
        let pick = |rng: &mut Rng, k: &[Value]| -> Bound<Vec<Value>> {
            match rng.below(3) {
                0 => Unbounded,
                1 => Included(k.to_vec()),
                _ => Excluded(k.to_vec()),
            }
        };
        let (lo, hi) = (pick(rng, &lo), pick(rng, &hi));
        let (lo, hi) = (
            lo.as_ref().map(Vec::as_slice),
            hi.as_ref().map(Vec::as_slice),
        );
        assert_eq!(
            tb.index_range(1, lo, hi),
            model_range(model, lo, hi),
            "{at}: range {lo:?}..{hi:?}"
        );
    }
}

/// Applies `ops` to the multiset of rows in `base`; the result must be the
/// multiset of rows in the model at commit.
fn replay(base: &Model, ops: &[WriteOp]) -> Vec<Row> {
    let mut rows: Vec<Row> = base.values().cloned().collect();
    let take = |rows: &mut Vec<Row>, r: &Row| {
        let at = rows
            .iter()
            .position(|x| x == r)
            .expect("write-set removes a row that exists");
        rows.swap_remove(at);
    };
    for op in ops {
        match op {
            WriteOp::Insert { row, .. } => rows.push(row.clone()),
            WriteOp::Update { old, new, .. } => {
                take(&mut rows, old);
                rows.push(new.clone());
            }
            WriteOp::Delete { row, .. } => take(&mut rows, row),
        }
    }
    rows.sort_by(|x, y| x.iter().cmp(y.iter()));
    rows
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (mut db, t) = model_db();
    let mut model = Model::new();
    let mut committed = Model::new();
    let mut savepoints: Vec<(Savepoint, Model)> = Vec::new();
    db.begin().unwrap();
    for step in 0..steps {
        let at = format!("seed {seed} step {step}");
        let live: Vec<RowId> = model.keys().copied().collect();
        let target = |rng: &mut Rng| match live.len() {
            0 => RowId(99),
            n if rng.chance(10) => RowId(n as u32 + 50),
            n => live[rng.below(n as u64) as usize],
        };
        match rng.below(20) {
            0..=7 => {
                let row = random_row(&mut rng);
                let want = expected_error(&model, &row, None);
                match db.insert(t, row.clone()) {
                    Ok(id) => {
                        assert_eq!(want, None, "{at}: insert {row:?} succeeded");
                        assert!(model.insert(id, row).is_none(), "{at}: reused a live slot");
                    }
                    Err(e) => assert_eq!(Some(error_name(&e)), want, "{at}: insert {row:?}: {e}"),
                }
            }
            8..=11 => {
                let id = target(&mut rng);
                let mut row = random_row(&mut rng);
                if rng.chance(2) {
                    if let Some(old) = model.get(&id) {
                        row[0] = old[0].clone(); // keep the own key
                    }
                }
                let want = match model.contains_key(&id) {
                    false => Some("no row"),
                    true => expected_error(&model, &row, Some(id)),
                };
                match db.update(t, id, row.clone()) {
                    Ok(()) => {
                        assert_eq!(want, None, "{at}: update {id:?} to {row:?} succeeded");
                        model.insert(id, row);
                    }
                    Err(e) => assert_eq!(Some(error_name(&e)), want, "{at}: update: {e}"),
                }
            }
            12..=14 => {
                let id = target(&mut rng);
                match db.delete(t, id) {
                    Ok(row) => assert_eq!(model.remove(&id), Some(row), "{at}: delete"),
                    Err(e) => assert!(!model.contains_key(&id), "{at}: delete: {e}"),
                }
            }
            15 | 16 => savepoints.push((db.savepoint(), model.clone())),
            17 => {
                if !savepoints.is_empty() {
                    let keep = rng.below(savepoints.len() as u64) as usize + 1;
                    savepoints.truncate(keep);
                    let (sp, snap) = savepoints[keep - 1].clone();
                    db.rollback_to(sp);
                    model = snap;
                }
            }
            18 => {
                let ws = db.commit().unwrap();
                let mut now: Vec<Row> = model.values().cloned().collect();
                now.sort_by(|x, y| x.iter().cmp(y.iter()));
                assert_eq!(replay(&committed, &ws.ops), now, "{at}: write-set");
                committed = model.clone();
                savepoints.clear();
                db.begin().unwrap();
            }
            _ => {
                db.rollback().unwrap();
                model = committed.clone();
                savepoints.clear();
                db.begin().unwrap();
            }
        }
        check_agree(&db, t, &model, &mut rng, &at);
    }
}

#[test]
fn random_ops_agree_with_a_naive_model() {
    for seed in 1..=12 {
        run(seed, 600);
    }
}

/// A snapshot reading a table a few rows at a time sees every row as it
/// was when it began, in slot order, whatever inserts (into freed and new
/// slots), updates, deletes and rollbacks come between its steps; a
/// snapshot that is over leaves no copy behind. Fixed seeds.
#[test]
fn a_snapshot_read_in_steps_sees_the_rows_as_they_were_when_it_began() {
    let schema = TableSchema {
        name: "s".into(),
        columns: vec![
            ColumnDef {
                name: "k".into(),
                ty: DataType::Integer,
                nullable: false,
                default: None,
            },
            ColumnDef {
                name: "v".into(),
                ty: DataType::Integer,
                nullable: true,
                default: None,
            },
        ],
        primary_key: None,
        indexes: vec![],
        partition_column: None,
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut db = Database::new();
        let t = db.create_table(schema.clone()).unwrap();
        let mut next = 0i64;
        db.begin().unwrap();
        for _ in 0..rng.below(60) {
            db.insert(t, row_kv(next, 0)).unwrap();
            next += 1;
        }
        db.commit().unwrap();
        for round in 0..6 {
            let table = db.table(t).unwrap();
            let expected: Vec<Row> = table.scan().map(|(_, r)| r.into()).collect();
            let token = SnapshotToken::new(std::sync::atomic::AtomicBool::new(true));
            db.begin_snapshot(&token);
            let mut got: Vec<Row> = Vec::new();
            let mut step = 0;
            loop {
                // A transaction of a few changes, committed or rolled back.
                db.begin().unwrap();
                for _ in 0..rng.below(6) {
                    let live: Vec<RowId> = db.table(t).unwrap().scan().map(|(id, _)| id).collect();
                    let pick = |rng: &mut Rng| live[rng.below(live.len() as u64) as usize];
                    match rng.below(3) {
                        0 => {
                            db.insert(t, row_kv(next, step)).unwrap();
                            next += 1;
                        }
                        1 if !live.is_empty() => {
                            let id = pick(&mut rng);
                            db.update(t, id, row_kv(-1, step)).unwrap();
                        }
                        2 if !live.is_empty() => {
                            let id = pick(&mut rng);
                            db.delete(t, id).unwrap();
                        }
                        _ => {}
                    }
                }
                if rng.chance(3) {
                    db.rollback().unwrap();
                } else {
                    db.commit().unwrap();
                }
                step += 1;
                let budget = 1 + rng.below(4) as usize;
                let mut took = 0;
                let done = db
                    .snapshot_table(t)
                    .unwrap()
                    .snapshot_rows(&token, |r| {
                        got.push(r.into());
                        took += 1;
                        took < budget
                    })
                    .expect("the table holds this snapshot's copy");
                if done {
                    break;
                }
            }
            assert_eq!(got, expected, "seed {seed} round {round}");
            token.store(false, std::sync::atomic::Ordering::Relaxed);
            let table = db.snapshot_table(t).unwrap();
            assert!(
                !table.holds_snapshot_copy(),
                "seed {seed}: dropped when done"
            );
        }
        // An abandoned snapshot's copy goes at the table's next change.
        let token = SnapshotToken::new(std::sync::atomic::AtomicBool::new(true));
        db.begin_snapshot(&token);
        token.store(false, std::sync::atomic::Ordering::Relaxed);
        db.begin().unwrap();
        db.insert(t, row_kv(next, 0)).unwrap();
        db.commit().unwrap();
        let table = db.snapshot_table(t).unwrap();
        assert!(
            !table.holds_snapshot_copy(),
            "seed {seed}: an abandoned copy is dropped"
        );
    }
}

fn row_kv(k: i64, v: i64) -> Row {
    vec![Value::Int(k), Value::Int(v)].into_boxed_slice()
}
