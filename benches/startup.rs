//! Start-up with many stored rules: how long `Services::open` (the plugin's
//! pre-initialization and compile, every stored rule loaded, the span log
//! replayed) takes on a data directory holding 1,000 active rule versions of
//! 10 tenants, the first time and again (what a restart costs). The 1,000
//! modules are one compiled rule with a distinct custom section each, so that
//! each is a module of its own to compile, of a real rule's size.
//!
//! Run: `cargo bench --bench startup` (`make bench`). Figures in docs/BENCHMARKS.md.

use clap::Parser;
use fluo::app::Services;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    serve: fluo::config::ServeArgs,
}

const TENANTS: usize = 10;
const RULES_PER_TENANT: usize = 100;
/// Rules of the upgrade case (each is a Javy compile).
const UPGRADED: usize = 100;

/// The payments fraud-check template (a trace rule).
const SOURCE: &str = fluo::rules::templates::TEMPLATES[0].source;

/// `SOURCE` with a comment that makes it a distinct source text.
fn variant_source(n: usize) -> String {
    format!("{SOURCE}\n// variant {n}\n")
}

/// `wasm` with a custom section named `fluo-bench` holding `n`: the same code, another module.
fn variant(wasm: &[u8], n: u32) -> Vec<u8> {
    let name = b"fluo-bench";
    let payload = n.to_le_bytes();
    let size = 1 + name.len() + payload.len();
    assert!(size < 128, "one-byte LEB128 sizes");
    let mut out = wasm.to_vec();
    out.extend_from_slice(&[0, size as u8, name.len() as u8]);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

fn config(dir: &std::path::Path) -> fluo::config::Config {
    let args = Args::parse_from(["fluo", "--data-dir", dir.to_str().unwrap(), "--operator-key", "startup-bench-operator-key-0123456789"]);
    fluo::config::Config::from_args(args.serve).unwrap()
}

/// Opens the services, timing the attempt that succeeds (the previous
/// instance's threads may hold the database lock a moment after it stopped).
fn open(dir: &std::path::Path) -> (Services, f64) {
    for _ in 0..100 {
        let started = Instant::now();
        match Services::open(&config(dir), None) {
            Ok((services, _)) => return (services, started.elapsed().as_secs_f64()),
            Err(error) if format!("{error:#}").contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(error) => panic!("{error:#}"),
        }
    }
    panic!("the database stayed locked");
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (services, empty) = open(dir.path());
    let engine = services.engine.clone();
    let compiled = fluo::rules::compile::compile(&engine, SOURCE).unwrap().0;
    let (mut n, mut tenants) = (0, Vec::new());
    for tenant in 0..TENANTS {
        let id = services.auth.create_tenant(&format!("tenant-{tenant}")).unwrap().0.id.to_string();
        tenants.push(id.clone());
        for rule in 0..RULES_PER_TENANT {
            let wasm = variant(&compiled.wasm, n);
            n += 1;
            services
                .store
                .rules
                .push(&id, &format!("rule-{rule}"), SOURCE, compiled.meta.clone(), &compiled.plugin_hash, &wasm, None, None, true)
                .unwrap();
        }
    }
    services.stop().unwrap();
    drop(services);
    println!("start-up (Services::open), {} active rule versions of {TENANTS} tenants, one run each:", TENANTS * RULES_PER_TENANT);
    println!("  empty data directory           {empty:>7.2} s");
    for attempt in ["first start with the rules", "restart", "restart again"] {
        let (services, took) = open(dir.path());
        let loaded: usize = tenants
            .iter()
            .filter_map(|id| Some(services.pipeline.evaluator.rules(&fluo::model::tenant::TenantId::trusted(id))?.rules.len()))
            .sum();
        assert_eq!(loaded, TENANTS * RULES_PER_TENANT, "every rule loaded");
        println!("  {attempt:<30} {took:>7.2} s  ({loaded} rules loaded)");
        services.stop().unwrap();
        drop(services);
    }

    // Compiling a rule (what saving and the editor's compile check do): the
    // source's bytecode, its module compiled, a trial start.
    let mut took = Vec::new();
    for n in 0..50 {
        let source = variant_source(n);
        let started = Instant::now();
        fluo::rules::compile::compile(&engine, &source).unwrap();
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    println!("compiling one rule, 50 sources: p50 {:.1} ms, p99 {:.1} ms", took[25], took[49]);
    // The module generation it replaced (javy-codegen, which compiles the plugin on every call), same run.
    let mut javy = Vec::new();
    for n in 0..5 {
        let source = variant_source(n);
        let code = fluo::rules::source::prepare(&source).unwrap().code;
        let started = Instant::now();
        let plugin = javy_codegen::Plugin::new(std::borrow::Cow::Owned(engine.plugin().wasm.clone())).unwrap();
        let mut generator = javy_codegen::Generator::new(plugin);
        generator.linking(javy_codegen::LinkingKind::Dynamic).source_embedding(javy_codegen::SourceEmbedding::Omitted);
        futures::executor::block_on(generator.generate(&javy_codegen::JS::from_string(code))).unwrap();
        javy.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    javy.sort_by(f64::total_cmp);
    println!("  the module generation alone with javy-codegen (before), 5 sources: p50 {:.0} ms", javy[2]);

    // After an upgrade that changes the plugin, stored modules no longer fit it:
    // each rule is compiled again from its source (Javy), once.
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = open(dir.path());
    let id = services.auth.create_tenant("upgraded").unwrap().0.id.to_string();
    for rule in 0..UPGRADED {
        let source = variant_source(rule);
        services
            .store
            .rules
            .push(&id, &format!("rule-{rule}"), &source, compiled.meta.clone(), "an-older-plugin", b"", None, None, true)
            .unwrap();
    }
    services.stop().unwrap();
    drop(services);
    println!("start-up, {UPGRADED} rule versions compiled by another plugin build:");
    for attempt in ["first start after the upgrade", "restart"] {
        let (services, took) = open(dir.path());
        let loaded = services.pipeline.evaluator.rules(&fluo::model::tenant::TenantId::trusted(&id)).map_or(0, |set| set.rules.len());
        assert_eq!(loaded, UPGRADED, "every rule loaded");
        println!("  {attempt:<30} {took:>7.2} s  ({loaded} rules loaded)");
        services.stop().unwrap();
        drop(services);
    }
}
