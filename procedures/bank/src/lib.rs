//! Bank accounts and transfers: the transfer workload of
//! `../shared/WORKLOADS.md`. Money only moves, so the sum of all balances
//! never changes; `check_invariant` proves it in one transaction.
//!
//! Procedures: `open_account`, `deposit` and `balance` (single-partition on
//! `accounts.id`); `transfer` (multi-partition: the two accounts may live on
//! different partitions); `total_balance` and `check_invariant`
//! (multi-partition reads).

use ohm_sdk::prelude::*;

/// The schema, one statement each (run in order before deploying).
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)",
    "PARTITION TABLE accounts ON COLUMN id",
];

ohm_sdk::statements! {
    pub GET_BALANCE = "SELECT balance FROM accounts WHERE id = ?";
    pub INSERT_ACCOUNT = "INSERT INTO accounts (id, balance) VALUES (?, ?)";
    pub ADD_TO_BALANCE = "UPDATE accounts SET balance = balance + ? WHERE id = ?";
    pub SUMMARY = "SELECT COUNT(*), COALESCE(SUM(balance), 0), MIN(balance) FROM accounts";
}

/// Opens account `id` with `balance`; aborts if it exists or the balance is
/// negative.
#[procedure(partition = "accounts.id", parameter = 0)]
pub fn open_account(ctx: &mut Context, id: i64, balance: i64) -> Result<()> {
    if balance < 0 {
        return Err(abort(format!("opening balance {balance} is negative")));
    }
    match ctx.execute_one(&INSERT_ACCOUNT, (id, balance)) {
        Ok(_) => Ok(()),
        Err(Error::Sql {
            code: ErrorCode::Unique,
            ..
        }) => Err(abort(format!("account {id} already exists"))),
        Err(e) => Err(e),
    }
}

/// The balance of account `id`, or NULL if there is no such account.
#[procedure(partition = "accounts.id", parameter = 0)]
pub fn balance(ctx: &mut Context, id: i64) -> Result<Option<i64>> {
    match ctx.execute_one(&GET_BALANCE, (id,))?.first() {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}

/// Adds `amount` (> 0) to account `id`; returns the new balance.
#[procedure(partition = "accounts.id", parameter = 0)]
pub fn deposit(ctx: &mut Context, id: i64, amount: i64) -> Result<i64> {
    if amount <= 0 {
        return Err(abort(format!("deposit amount {amount} is not positive")));
    }
    ctx.queue(&ADD_TO_BALANCE, (amount, id));
    ctx.queue(&GET_BALANCE, (id,));
    let r = ctx.execute()?;
    if r[0].affected() == 0 {
        return Err(abort(format!("no account {id}")));
    }
    r[1].scalar()
}

/// Moves `amount` from account `from` to account `to` if `from` has enough;
/// otherwise aborts and nothing changes. Returns `from`'s new balance.
#[procedure]
pub fn transfer(ctx: &mut Context, from: i64, to: i64, amount: i64) -> Result<i64> {
    if amount <= 0 {
        return Err(abort(format!("transfer amount {amount} is not positive")));
    }
    if from == to {
        return Err(abort(format!("transfer from account {from} to itself")));
    }
    ctx.queue(&GET_BALANCE, (from,));
    ctx.queue(&GET_BALANCE, (to,));
    let r = ctx.execute()?;
    let from_balance: i64 = match r[0].first() {
        Some(row) => row.get(0)?,
        None => return Err(abort(format!("no account {from}"))),
    };
    if r[1].is_empty() {
        return Err(abort(format!("no account {to}")));
    }
    if from_balance < amount {
        return Err(abort(format!(
            "insufficient funds: account {from} has {from_balance}, the transfer needs {amount}"
        )));
    }
    ctx.queue(&ADD_TO_BALANCE, (-amount, from));
    ctx.queue(&ADD_TO_BALANCE, (amount, to));
    ctx.execute()?;
    Ok(from_balance - amount)
}

/// The sum of all balances.
#[procedure]
pub fn total_balance(ctx: &mut Context) -> Result<i64> {
    ctx.execute_one(&SUMMARY, ())?
        .first()
        .map_or(Ok(0), |row| row.get(1))
}

/// The invariant: exactly `accounts` accounts, holding `total` in all, none
/// negative. Aborts with what differs; returns the total.
#[procedure]
pub fn check_invariant(ctx: &mut Context, accounts: i64, total: i64) -> Result<i64> {
    let summary = ctx.execute_one(&SUMMARY, ())?;
    let row = summary
        .first()
        .ok_or_else(|| abort("the summary query returned no row"))?;
    let (count, sum, min): (i64, i64, Option<i64>) = (row.get(0)?, row.get(1)?, row.get(2)?);
    if count != accounts {
        return Err(abort(format!("{count} accounts, expected {accounts}")));
    }
    if sum != total {
        return Err(abort(format!("balances sum to {sum}, expected {total}")));
    }
    if let Some(min) = min.filter(|m| *m < 0) {
        return Err(abort(format!("an account holds {min}, below zero")));
    }
    Ok(sum)
}

ohm_sdk::export!(
    statements = STATEMENTS,
    procedures = [
        open_account,
        balance,
        deposit,
        transfer,
        total_balance,
        check_invariant
    ]
);

/// Native unit tests (`cargo test -p ohm-bank`), no Wasm build needed.
#[cfg(test)]
mod tests {
    use ohm::types::Value;
    use ohm::wasm::testing::TestDb;
    use ohm::wasm::{ProcError, ProcOutput};

    #[test]
    fn transfers_conserve_money_and_failed_ones_change_nothing() {
        let mut db = TestDb::new();
        for ddl in super::SCHEMA {
            db.sql(ddl);
        }
        db.deploy_native("bank", super::module()).unwrap();
        for id in 1..=3 {
            db.call("open_account", &[Value::Int(id), Value::Int(50)])
                .unwrap();
        }
        let t = |db: &mut TestDb, from, to, amount| {
            db.call(
                "transfer",
                &[Value::Int(from), Value::Int(to), Value::Int(amount)],
            )
        };
        assert_eq!(
            t(&mut db, 1, 2, 20).unwrap(),
            ProcOutput::Value(Value::Int(30))
        );
        let err = t(&mut db, 1, 3, 31).unwrap_err();
        assert!(matches!(err, ProcError::Aborted { .. }), "{err}");
        let ok = db.call("check_invariant", &[Value::Int(3), Value::Int(150)]);
        assert_eq!(ok.unwrap(), ProcOutput::Value(Value::Int(150)));
        assert_eq!(
            db.query_rows("SELECT balance FROM accounts ORDER BY id"),
            vec![
                vec![Value::Int(30)],
                vec![Value::Int(70)],
                vec![Value::Int(50)]
            ]
        );
    }
}
