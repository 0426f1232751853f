//! A key-value store: `get`, `put`, `cas` (compare-and-set) and `delete`,
//! each single-partition on the key. Every write bumps the key's version.

use ohm_sdk::prelude::*;

/// The schema, one statement each (run in order before deploying).
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE kv (
        k VARCHAR(256) PRIMARY KEY,
        v VARBINARY(1048576) NOT NULL,
        version BIGINT NOT NULL)",
    "PARTITION TABLE kv ON COLUMN k",
];

ohm_sdk::statements! {
    pub GET = "SELECT v, version FROM kv WHERE k = ?";
    pub INSERT = "INSERT INTO kv (k, v, version) VALUES (?, ?, 1)";
    pub UPDATE = "UPDATE kv SET v = ?, version = version + 1 WHERE k = ?";
    pub DELETE = "DELETE FROM kv WHERE k = ?";
}

/// The value stored under `key`, or NULL.
#[procedure(partition = "kv.k", parameter = 0)]
pub fn get(ctx: &mut Context, key: String) -> Result<Option<Vec<u8>>> {
    match ctx.execute_one(&GET, (&key,))?.first() {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}

/// Stores `value` under `key`; returns the key's new version (1 when new).
#[procedure(partition = "kv.k", parameter = 0)]
pub fn put(ctx: &mut Context, key: String, value: Vec<u8>) -> Result<i64> {
    let current = ctx.execute_one(&GET, (&key,))?;
    match current.first() {
        Some(row) => {
            let version: i64 = row.get(1)?;
            ctx.execute_one(&UPDATE, (value, &key))?;
            Ok(version + 1)
        }
        None => {
            ctx.execute_one(&INSERT, (&key, value))?;
            Ok(1)
        }
    }
}

/// Stores `new` under `key` only if the current value is `expected` (NULL:
/// the key must be absent). Returns whether it stored.
#[procedure(partition = "kv.k", parameter = 0)]
pub fn cas(
    ctx: &mut Context,
    key: String,
    expected: Option<Vec<u8>>,
    new: Vec<u8>,
) -> Result<bool> {
    let current = ctx.execute_one(&GET, (&key,))?;
    let current: Option<Vec<u8>> = match current.first() {
        Some(row) => Some(row.get(0)?),
        None => None,
    };
    if current != expected {
        return Ok(false);
    }
    if current.is_some() {
        ctx.execute_one(&UPDATE, (new, &key))?;
    } else {
        ctx.execute_one(&INSERT, (&key, new))?;
    }
    Ok(true)
}

/// Removes `key`; returns whether it was there.
#[procedure(partition = "kv.k", parameter = 0)]
pub fn delete(ctx: &mut Context, key: String) -> Result<bool> {
    Ok(ctx.execute_one(&DELETE, (&key,))?.affected() == 1)
}

ohm_sdk::export!(
    statements = STATEMENTS,
    procedures = [get, put, cas, delete]
);

/// Native unit tests (`cargo test -p ohm-kv`), no Wasm build needed.
#[cfg(test)]
mod tests {
    use ohm::types::Value;
    use ohm::wasm::testing::TestDb;
    use ohm::wasm::ProcOutput;

    #[test]
    fn cas_only_replaces_the_expected_value() {
        let mut db = TestDb::new();
        for ddl in super::SCHEMA {
            db.sql(ddl);
        }
        db.deploy_native("kv", super::module()).unwrap();
        let key = Value::Text("k".into());
        let b = |s: &[u8]| Value::Bytes(s.into());
        let yes = ProcOutput::Value(Value::Bool(true));
        let no = ProcOutput::Value(Value::Bool(false));
        assert_eq!(
            db.call("cas", &[key.clone(), Value::Null, b(b"1")])
                .unwrap(),
            yes
        );
        assert_eq!(
            db.call("cas", &[key.clone(), b(b"0"), b(b"2")]).unwrap(),
            no
        );
        assert_eq!(
            db.call("cas", &[key.clone(), b(b"1"), b(b"2")]).unwrap(),
            yes
        );
        assert_eq!(
            db.call("get", std::slice::from_ref(&key)).unwrap(),
            ProcOutput::Value(b(b"2"))
        );
        assert_eq!(
            db.query_rows("SELECT version FROM kv"),
            vec![vec![Value::Int(2)]]
        );
    }
}
