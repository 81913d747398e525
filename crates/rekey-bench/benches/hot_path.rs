//! Criterion micro-benchmarks of the token endpoint's hot path, small enough to run in
//! seconds: `cargo bench -p rekey-bench --bench hot_path -- --quick` (see BENCHMARKS.md).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use criterion::{criterion_group, criterion_main, Criterion};
use rekey_bench::app_settings;
use rekey_core::apps::new_app;
use rekey_core::auth::match_secret;
use rekey_core::clock::{Clock, SystemClock};
use rekey_core::crypto::ServerKey;
use rekey_core::model::{Org, OrgId};
use rekey_core::store::Store;
use rekey_core::token::{generate_signing_key, AccessClaims, KeySet};
use rekey_server::oauth::token::{parse_params, Dialect};
use rekey_store::testing::TestDb;
use rekey_store::SqlStore;
use secrecy::ExposeSecret;

fn hot_path(c: &mut Criterion) {
    let key = ServerKey::generate();
    let hasher = key.secret_hasher();
    let now = SystemClock.now();
    let (app, secret, plain) = new_app(
        OrgId::new(),
        None,
        app_settings("bench"),
        false,
        &hasher,
        "bench",
        now,
    )
    .unwrap();
    let plain = plain.expose_secret().to_string();

    // A rotation in progress: two valid secrets to compare against.
    let previous = {
        let (_, s, _) = new_app(
            OrgId::new(),
            None,
            app_settings("bench"),
            false,
            &hasher,
            "bench",
            now,
        )
        .unwrap();
        s
    };
    let secrets = vec![secret.clone(), previous];
    c.bench_function(
        "secret check (keyed hash + 2 constant-time compares)",
        |b| b.iter(|| match_secret(&secrets, &hasher.hash(&plain), now).is_some()),
    );

    let sealer = key.sealer("signing-keys");
    let keys = KeySet::load(
        "http://127.0.0.1",
        &[generate_signing_key(&sealer, now)],
        &sealer,
        now,
    )
    .unwrap();
    let claims = AccessClaims {
        iss: "http://127.0.0.1".into(),
        sub: app.client_id.clone(),
        aud: Vec::new(),
        client_id: Some(app.client_id.clone()),
        iat: now.as_secs(),
        exp: now.as_secs() + 3600,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: "read".into(),
        sid: Some(secret.id.to_string()),
        tid: None,
        context_name: None,
        perms: None,
    };
    c.bench_function("JWT signing (Ed25519)", |b| {
        b.iter(|| keys.sign(&claims).unwrap())
    });

    // The signature alone, by the two well-kept Ed25519 implementations, over a typical
    // JWT signing input (header and claims, base64url).
    let message = keys.sign(&claims).unwrap();
    let message = message.rsplit_once('.').unwrap().0.as_bytes().to_vec();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ring_pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    c.bench_function("Ed25519 sign, ring", |b| {
        b.iter(|| ring_pair.sign(&message))
    });
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    use ed25519_dalek::Signer as _;
    let dalek = ed25519_dalek::SigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();
    assert_eq!(
        dalek.sign(&message).to_bytes().as_slice(),
        ring_pair.sign(&message).as_ref(),
        "Ed25519 is deterministic: both must sign alike"
    );
    c.bench_function("Ed25519 sign, ed25519-dalek (fast)", |b| {
        b.iter(|| dalek.sign(&message))
    });

    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={plain}&scope=read",
        app.client_id
    );
    c.bench_function("form parsing (token request)", |b| {
        b.iter(|| parse_params(Dialect::Generic, &headers, form.as_bytes()).unwrap())
    });

    // Store lookup on SQLite: from the client cache, and from the database.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::sqlite());
    let org = Org {
        id: OrgId::new(),
        name: "bench".into(),
        created_at: now,
    };
    rt.block_on(async {
        db.store.create_org(&org, &[]).await.unwrap();
        let mut stored = app.clone();
        stored.org_id = org.id;
        db.store
            .create_app(&stored, &secret, None, &[])
            .await
            .unwrap();
    });
    let uncached: Arc<SqlStore> = Arc::new(db.store.clone());
    let cached = Arc::new(
        rt.block_on(
            db.store
                .clone()
                .with_client_cache(1000, Duration::from_secs(3600)),
        )
        .unwrap(),
    );
    c.bench_function("store lookup, SQLite, database", |b| {
        b.iter(|| {
            rt.block_on(uncached.load_client(&app.client_id))
                .unwrap()
                .unwrap()
        })
    });
    c.bench_function("store lookup, SQLite, client cache hit", |b| {
        b.iter(|| {
            rt.block_on(cached.load_client(&app.client_id))
                .unwrap()
                .unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = hot_path
}
criterion_main!(benches);
