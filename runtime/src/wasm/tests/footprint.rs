//! What a deployed module costs while idle, and how many instances stay
//! live: a tenant's module flood must not exhaust the node's address
//! space or memory mappings (issue 11, finding 1).

use super::*;
use crate::wasm::instance::Live;
use crate::wasm::proc_host::INSTANCES_LIVE_MAX;
use crate::wasm::Limits;

/// A module with one do-nothing procedure named `p<i>`, unique per `i`
/// (procedure names are unique across a tenant's modules).
pub(crate) fn tiny_module(i: usize) -> Vec<u8> {
    let mut g = Guest::new();
    let unit = g.constant(&UNIT);
    g.procedure(
        &format!("p{i}"),
        vec![],
        ty::UNIT,
        None,
        &return_const(unit, 0),
    );
    g.wasm()
}

#[test]
fn an_idle_module_holds_no_instance_and_live_instances_are_bounded() {
    let mut db = TestDb::new();
    let modules = INSTANCES_LIVE_MAX * 3;
    for i in 0..modules {
        db.deploy_wasm(&format!("m{i}"), &tiny_module(i)).unwrap();
    }
    // Deploying instantiates nothing: an idle module costs no mappings.
    assert_eq!(db.host().instances_live(), 0);
    for i in 0..modules {
        assert_eq!(
            db.call(&format!("p{i}"), &[]).unwrap(),
            crate::wasm::ProcOutput::Value(Value::Null)
        );
        assert!(db.host().instances_live() <= INSTANCES_LIVE_MAX);
    }
    assert_eq!(db.host().instances_live(), INSTANCES_LIVE_MAX);
    // An evicted module is instantiated again by its next call.
    assert_eq!(
        db.call("p0", &[]).unwrap(),
        crate::wasm::ProcOutput::Value(Value::Null)
    );
}

/// The address space the process has mapped, from /proc/self/status.
fn vm_size_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

#[test]
fn an_instance_reserves_about_its_memory_limit_not_gigabytes() {
    let runtime = crate::wasm::testing::shared_runtime();
    let compiled = runtime.compile("tiny", &tiny_module(0)).unwrap();
    let limits = Limits::default();
    let n = 32u64;
    let before = vm_size_bytes();
    let live: Vec<Live> = (0..n)
        .map(|_| Live::new(&compiled.pre, &limits).unwrap())
        .collect();
    let grown = vm_size_bytes().saturating_sub(before);
    // wasmtime's default reserves 4 GiB and more per memory (32 of them:
    // 128+ GiB); reserving the 64 MiB limit plus a guard is about 2 GiB.
    // Other tests run meanwhile (threads, malloc arenas), so the bound
    // leaves them 6 GiB: still a sixteenth of what the old reservation took.
    let per_instance = limits.memory_bytes_max as u64 * 4;
    assert!(
        grown < n * per_instance,
        "{n} instances took {grown} bytes of address space, over {} each",
        per_instance
    );
    drop(live);
}
