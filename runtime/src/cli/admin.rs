//! The one-shot client commands: `ohm deploy`, `drop`, `call`, `status`
//! and `tenant create`. Each connects, sends one request, prints the answer
//! and exits non-zero on an error. Owns parsing `call` arguments from the
//! command line; must not keep state between runs.

use super::connect::{ConnectArgs, TokenRole};
use super::format::{render_error, TextTable};
use crate::driver::{CallResult, ClientError};
use crate::proto::StatusInfo;
use crate::types::Value;
use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Largest module `ohm deploy` reads (the protocol's frame limit is higher).
const MODULE_BYTES_MAX: u64 = 32 << 20;

/// Flags of `ohm deploy`.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The compiled procedure module.
    #[arg(value_name = "FILE.wasm")]
    pub file: PathBuf,
    /// Module name (default: the file name without `.wasm`).
    #[arg(long)]
    pub name: Option<String>,
}

/// Flags of `ohm drop`.
#[derive(Debug, Clone, Args)]
pub struct DropArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The module to remove, with its procedures.
    pub name: String,
}

/// Flags of `ohm call`.
#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Pass every argument as text (no number/null/bool parsing).
    #[arg(long)]
    pub text: bool,
    /// The procedure.
    pub procedure: String,
    /// Arguments: integers, floats, null, true/false, or text.
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
}

/// Flags of `ohm status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Flags of `ohm tenant create`.
#[derive(Debug, Clone, Args)]
pub struct TenantCreateArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The new tenant's name.
    pub name: String,
}

/// Flags of `ohm tenant quota`.
#[derive(Debug, Clone, Args)]
pub struct TenantQuotaArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The tenant's name.
    pub name: String,
    /// Quotas to set, as NAME=VALUE, or NAME=default for the node's
    /// default (names: modules_max, module_bytes_max, rows_max,
    /// connections_max, in_flight_max, calls_per_sec, call_timeout_ms,
    /// sql_timeout_ms, fuel_per_sec). None: show them.
    #[arg(value_name = "NAME=VALUE")]
    pub set: Vec<String>,
}

/// Flags of `ohm tenant token create`.
#[derive(Debug, Clone, Args)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The tenant's name.
    pub tenant: String,
    /// The new principal's name (letters, digits, '_' or '-').
    pub name: String,
    /// What it may do: owner (everything in the tenant, its tokens too),
    /// deployer (deploy, drop, call, any SQL), caller (call the procedures
    /// granted), reader (SQL queries only); admin in tenant system.
    #[arg(long)]
    pub role: String,
    /// A procedure a caller may call (repeatable; `*`: every one).
    #[arg(long = "grant", value_name = "PROCEDURE")]
    pub grants: Vec<String>,
}

/// Flags of `ohm tenant token revoke`.
#[derive(Debug, Clone, Args)]
pub struct TokenRevokeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The tenant's name.
    pub tenant: String,
    /// The principal to revoke: its token is refused from now on.
    pub name: String,
}

/// Flags of `ohm tenant token list`.
#[derive(Debug, Clone, Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The tenant's name.
    pub tenant: String,
}

/// Creates a principal and prints its token (once). An admin's token by
/// default; a tenant's owner gives its own (`--token`).
pub async fn token_create(args: TokenCreateArgs) -> anyhow::Result<ExitCode> {
    let client = args.connect.connect(TokenRole::Admin).await?;
    let made = client
        .create_token(Some(&args.tenant), &args.name, &args.role, &args.grants)
        .await;
    match made {
        Ok(t) => {
            println!(
                "created principal {} of tenant {} with role {}{}",
                t.principal.name,
                t.tenant,
                t.principal.role,
                grants_text(&t.principal.grants)
            );
            println!("token (shown once; keep it safe): {}", t.token);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report(e, &args.connect.addr)),
    }
}

/// Revokes a principal.
pub async fn token_revoke(args: TokenRevokeArgs) -> anyhow::Result<ExitCode> {
    let client = args.connect.connect(TokenRole::Admin).await?;
    match client.revoke_token(Some(&args.tenant), &args.name).await {
        Ok(()) => {
            println!(
                "revoked principal {} of tenant {}: its token is refused from now on",
                args.name, args.tenant
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report(e, &args.connect.addr)),
    }
}

/// Lists a tenant's principals and their roles.
pub async fn token_list(args: TokenListArgs) -> anyhow::Result<ExitCode> {
    let client = args.connect.connect(TokenRole::Admin).await?;
    match client.tokens(Some(&args.tenant)).await {
        Ok(ps) => {
            print!("{}", render_principals(&args.tenant, &ps));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report(e, &args.connect.addr)),
    }
}

fn grants_text(grants: &[String]) -> String {
    if grants.is_empty() {
        String::new()
    } else {
        format!(" (may call {})", grants.join(", "))
    }
}

/// A tenant's principals, one a line: name, role, and a caller's grants.
pub fn render_principals(tenant: &str, ps: &[crate::proto::PrincipalDesc]) -> String {
    let mut out = format!("tenant {tenant}: {} principal(s)\n", ps.len());
    for p in ps {
        let line = format!("  {:<24} {:<9}{}", p.name, p.role, grants_text(&p.grants));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `NAME=VALUE` (or `NAME=default`) as a quota change.
fn quota_change(arg: &str) -> Result<(String, Option<u64>), String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?}: write NAME=VALUE, e.g. rows_max=1000000"))?;
    if crate::catalog::QuotaField::by_name(name).is_none() {
        let names: Vec<_> = crate::catalog::QuotaField::ALL
            .iter()
            .map(|f| f.name())
            .collect();
        return Err(format!(
            "{arg:?}: unknown quota {name:?} (known: {})",
            names.join(", ")
        ));
    }
    let value = match value {
        "default" => None,
        v => Some(
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{arg:?}: {v:?} is not a whole number (or `default`)"))?,
        ),
    };
    Ok((name.to_string(), value))
}

/// Runs `ohm tenant quota`: shows a tenant's quotas, after setting those
/// given.
pub async fn tenant_quota(args: TenantQuotaArgs) -> anyhow::Result<ExitCode> {
    let set = match args
        .set
        .iter()
        .map(|a| quota_change(a))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let client = args.connect.connect(TokenRole::Admin).await?;
    match client.tenant_quota(&args.name, &set).await {
        Ok(quota) => {
            print!("{}", render_quota(&args.name, &quota));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report(e, &args.connect.addr)),
    }
}

/// A tenant's quotas, one a line: name, value, and where it comes from.
pub fn render_quota(tenant: &str, quota: &[crate::proto::QuotaValue]) -> String {
    let mut out = format!("tenant {tenant}\n");
    for q in quota {
        let from = if q.set {
            "set for this tenant"
        } else {
            "node default"
        };
        out.push_str(&format!("  {:<17} {:>14}  ({from})\n", q.name, q.value));
    }
    out
}

/// A command-line argument as a value: `null`, `true`/`false`, an integer,
/// a float, or else text. `as_text` keeps everything text.
pub fn parse_arg(arg: &str, as_text: bool) -> Value {
    if as_text {
        return Value::text(arg);
    }
    match arg {
        "null" | "NULL" => Value::Null,
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            if let Ok(i) = arg.parse::<i64>() {
                Value::Int(i)
            } else if let Some(d) = parse_float(arg) {
                Value::Double(d)
            } else {
                Value::text(arg)
            }
        }
    }
}

/// A finite float written with digits (Rust also accepts `inf`, `nan`,
/// which are more likely meant as text).
fn parse_float(arg: &str) -> Option<f64> {
    let looks_numeric = arg.bytes().any(|b| b.is_ascii_digit())
        && arg
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    looks_numeric.then(|| arg.parse::<f64>().ok()).flatten()
}

/// Prints a node-side error as `ERROR (code): message`, any other failure
/// with its hint line; returns the failure exit code.
fn report(err: ClientError, addr: &str) -> ExitCode {
    match err {
        ClientError::Server(e) => eprintln!("{}", render_error(&e)),
        other => eprintln!("error: {other}\n{}", super::connect::hint(&other, addr)),
    }
    ExitCode::FAILURE
}

/// Runs `ohm deploy`.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .file
            .file_stem()
            .and_then(|s| s.to_str())
            .context("cannot take a module name from the file name: pass --name")?
            .to_string(),
    };
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    if size > MODULE_BYTES_MAX {
        bail!(
            "{} is {size} bytes; modules may be at most {MODULE_BYTES_MAX}",
            args.file.display()
        );
    }
    let wasm =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let client = args.connect.connect(TokenRole::Demo).await?;
    match client.deploy(&name, wasm).await {
        Ok(d) => {
            let verb = if d.replaced { "replaced" } else { "deployed" };
            println!("{verb} module {}: {}", d.module, d.procedures.join(", "));
            for w in &d.warnings {
                eprintln!("warning: {w}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report(e, &args.connect.addr)),
    }
}

/// Runs `ohm drop`.
pub async fn drop_module(args: DropArgs) -> anyhow::Result<ExitCode> {
    let client = args.connect.connect(TokenRole::Demo).await?;
    match client.drop_module(&args.name).await {
        Ok(true) => println!("dropped module {}", args.name),
        Ok(false) => {
            eprintln!("no module named {} (nothing dropped)", args.name);
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Ok(report(e, &args.connect.addr)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `ohm call`.
pub async fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    let values = args.args.iter().map(|a| parse_arg(a, args.text)).collect();
    let client = args.connect.connect(TokenRole::Demo).await?;
    match client.call(&args.procedure, values).await {
        Ok(CallResult::Value(v)) => println!("{v}"),
        Ok(CallResult::Rows(rows)) => print!("{}", TextTable::from_rows(&rows).render()),
        Err(e) => return Ok(report(e, &args.connect.addr)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `ohm status`.
pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    // The node-wide counters are shown to the admin only.
    let client = args.connect.connect(TokenRole::Admin).await?;
    match client.status().await {
        Ok(s) => print!("{}", render_status(&s)),
        Err(e) => return Ok(report(e, &args.connect.addr)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The status report: a summary line, a table with one row per partition
/// and, in a cluster, the node's links to the others.
pub fn render_status(s: &StatusInfo) -> String {
    let table = TextTable {
        header: [
            "partition",
            "role",
            "leader",
            "replicas (lag)",
            "chosen",
            "applied",
            "committed",
            "failed",
            "queued",
            "log bytes",
            "rows",
        ]
        .map(String::from)
        .to_vec(),
        right: vec![
            true, false, true, false, true, true, true, true, true, true, true,
        ],
        rows: s
            .partitions
            .iter()
            .map(|p| {
                let mut row = vec![
                    p.id.to_string(),
                    p.role.clone(),
                    if p.leader == 0 {
                        "?".to_string()
                    } else {
                        p.leader.to_string()
                    },
                    replicas(p),
                ];
                row.extend(
                    [
                        p.durable_lsn,
                        p.applied,
                        p.committed,
                        p.failed,
                        p.queued,
                        p.log_bytes,
                        p.rows,
                    ]
                    .map(|n| n.to_string()),
                );
                row
            })
            .collect(),
    };
    let mut out = format!(
        "node {} (ohm {}), up {:.1} s, durability {}, {} connection(s)\n{}",
        s.node_id,
        s.version,
        s.uptime_ms as f64 / 1e3,
        s.durability,
        s.connections,
        table.render()
    );
    for l in &s.peers {
        let state = match (&l.connected, &l.last_error) {
            (true, _) => "reachable".to_string(),
            (false, Some(e)) => format!("UNREACHABLE ({e})"),
            (false, None) => "UNREACHABLE (never connected)".to_string(),
        };
        out.push_str(&format!("peer node {} at {}: {state}\n", l.node, l.addr));
    }
    for p in s.partitions.iter().filter(|p| p.disk_full) {
        out.push_str(&format!(
            "partition {}: DISK FULL: writes are refused until there is room (reads go on)\n",
            p.id
        ));
    }
    out
}

/// `1 2(0) 3(5)`: each replica, with how many slots its log trails the
/// leader's (known on the leader only).
fn replicas(p: &crate::proto::PartitionStatus) -> String {
    let top = p.replicas.iter().filter_map(|r| r.matched).max();
    p.replicas
        .iter()
        .map(|r| match (r.matched, top) {
            (Some(m), Some(t)) if p.replicas.len() > 1 => format!("{}({})", r.node, t - m),
            _ => r.node.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `ohm tenant create`.
pub async fn tenant_create(args: TenantCreateArgs) -> anyhow::Result<ExitCode> {
    let client = args.connect.connect(TokenRole::Admin).await?;
    match client.create_tenant(&args.name).await {
        Ok(t) => {
            println!("created tenant {} with principal {}", t.tenant, t.principal);
            println!("token (shown once; keep it safe): {}", t.token);
            println!(
                "use it with:  OHM_TOKEN={} ohm sql --addr {}",
                t.token, args.connect.addr
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report(e, &args.connect.addr)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::PartitionStatus;

    #[test]
    fn principals_render_a_line_each_with_a_callers_grants() {
        let p = |name: &str, role: &str, grants: &[&str]| crate::proto::PrincipalDesc {
            name: name.into(),
            role: role.into(),
            grants: grants.iter().map(|g| g.to_string()).collect(),
        };
        let text = render_principals(
            "acme",
            &[
                p("app", "caller", &["results", "vote"]),
                p("owner", "owner", &[]),
            ],
        );
        assert_eq!(
            text,
            "tenant acme: 2 principal(s)\n  app                      caller    (may call results, vote)\n  owner                    owner\n"
        );
    }

    #[test]
    fn quota_changes_parse_and_bad_ones_say_why() {
        assert_eq!(
            quota_change("rows_max=1_000").unwrap(),
            ("rows_max".to_string(), Some(1000))
        );
        assert_eq!(
            quota_change("calls_per_sec=default").unwrap(),
            ("calls_per_sec".to_string(), None)
        );
        assert!(quota_change("rows_max").unwrap_err().contains("NAME=VALUE"));
        assert!(quota_change("rows=5")
            .unwrap_err()
            .contains("unknown quota"));
        assert!(quota_change("rows_max=-1")
            .unwrap_err()
            .contains("whole number"));
        let shown = render_quota(
            "acme",
            &[crate::proto::QuotaValue {
                name: "rows_max".into(),
                value: 10,
                set: true,
            }],
        );
        assert!(
            shown.contains("rows_max") && shown.contains("set for this tenant"),
            "{shown}"
        );
    }

    #[test]
    fn arguments_parse_by_shape() {
        assert_eq!(parse_arg("42", false), Value::Int(42));
        assert_eq!(parse_arg("-7", false), Value::Int(-7));
        assert_eq!(parse_arg("2.5", false), Value::Double(2.5));
        assert_eq!(parse_arg("1e3", false), Value::Double(1000.0));
        assert_eq!(parse_arg("null", false), Value::Null);
        assert_eq!(parse_arg("true", false), Value::Bool(true));
        assert_eq!(parse_arg("false", false), Value::Bool(false));
        assert_eq!(parse_arg("Edwina", false), Value::text("Edwina"));
        assert_eq!(parse_arg("inf", false), Value::text("inf"));
        assert_eq!(parse_arg("1-2", false), Value::text("1-2"));
        assert_eq!(parse_arg("42", true), Value::text("42"));
        assert_eq!(parse_arg("null", true), Value::text("null"));
    }

    #[test]
    fn status_renders_one_row_per_partition_and_the_peers() {
        use crate::proto::{PeerLink, ReplicaStatus};
        let s = StatusInfo {
            version: "0.1.0".into(),
            node_id: 1,
            uptime_ms: 1500,
            durability: "sync".into(),
            connections: 2,
            partitions: vec![PartitionStatus {
                id: 0,
                committed: 10,
                failed: 1,
                queued: 0,
                durable_lsn: 9,
                log_bytes: 1234,
                rows: 5,
                role: "leader".into(),
                leader: 1,
                applied: 9,
                replicas: vec![
                    ReplicaStatus {
                        node: 1,
                        matched: Some(12),
                    },
                    ReplicaStatus {
                        node: 2,
                        matched: Some(7),
                    },
                    ReplicaStatus {
                        node: 3,
                        matched: None,
                    },
                ],
                disk_full: true,
            }],
            peers: vec![
                PeerLink {
                    node: 2,
                    addr: "127.0.0.1:7461".into(),
                    connected: true,
                    last_error: None,
                },
                PeerLink {
                    node: 3,
                    addr: "127.0.0.1:7471".into(),
                    connected: false,
                    last_error: Some("no handshake".into()),
                },
            ],
        };
        let text = render_status(&s);
        assert!(text.starts_with("node 1 (ohm 0.1.0), up 1.5 s, durability sync"));
        assert!(
            text.contains("partition 0: DISK FULL: writes are refused"),
            "{text}"
        );
        assert!(
            text.contains("| leader |      1 | 1(0) 2(5) 3    |"),
            "{text}"
        );
        assert!(text.contains("|        10 |      1 |"), "{text}");
        assert!(text.contains("(1 row)\n"), "{text}");
        assert!(
            text.contains("peer node 2 at 127.0.0.1:7461: reachable"),
            "{text}"
        );
        assert!(
            text.contains("peer node 3 at 127.0.0.1:7471: UNREACHABLE (no handshake)"),
            "{text}"
        );
    }
}
