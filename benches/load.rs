//! Load + validate + normalize a generated 500-service project (target: under 50 ms).
//! `cargo bench --bench load` prints criterion's median.

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion};
use hoist::project::{load_str, LoadOptions};

/// A project of `n` services shaped like real ones: images, ports, volumes, env, healthchecks,
/// dependencies on earlier services, anchors and interpolation.
fn generate(n: usize) -> String {
    let mut text = String::from(
        "x-common: &common\n  restart: unless-stopped\n  logging:\n    driver: json-file\n    options: {max-size: 10m}\nservices:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "  svc{i}:\n    <<: *common\n    image: registry.local/app{i}:${{TAG:-latest}}\n    command: [\"serve\", \"--port\", \"{port}\"]\n    environment:\n      SERVICE: svc{i}\n      DATABASE_URL: mysql://db/app{i}\n    ports:\n      - \"127.0.0.1:{host}:{port}\"\n    volumes:\n      - ./data/{i}:/data\n      - cache{m}:/cache\n    healthcheck:\n      test: [\"CMD\", \"check\", \"{i}\"]\n      interval: 10s\n      retries: 3\n    labels: [\"index={i}\"]\n",
            port = 8000 + i % 100,
            host = 10000 + i,
            m = i % 10,
        ));
        if i > 0 {
            text.push_str(&format!("    depends_on:\n      svc{}:\n        condition: service_started\n", i - 1));
        }
    }
    text.push_str("volumes:\n");
    for m in 0..10 {
        text.push_str(&format!("  cache{m}: {{}}\n"));
    }
    text
}

fn bench_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = generate(500);
    let opts = LoadOptions {
        cwd: dir.path().to_path_buf(),
        project_name: Some("bench".into()),
        environment: BTreeMap::new(),
        ..LoadOptions::default()
    };
    let loaded = load_str(&text, &opts).unwrap_or_else(|e| panic!("generated project must load: {e}"));
    assert_eq!(loaded.project.services.len(), 500);
    c.bench_function("load_validate_normalize_500_services", |b| b.iter(|| load_str(&text, &opts).map(|l| l.project)));
}

criterion_group!(benches, bench_load);
criterion_main!(benches);
