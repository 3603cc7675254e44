//! What an operator relies on, embedded or production: billing and its
//! webhooks, the admin endpoints, retention, metrics and request ids, and the
//! abuse limits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use splitsound_server::Config;
use splitsound_server::config::BillingConfig;
use splitsound_server::config::Rate;

use sqlx::Row;

use super::{Server, user_id, wav};

const WHSEC: &str = "whsec_test_0123456789abcdef";

/// A request's headers and its form fields.
type Recorded = (BTreeMap<String, String>, BTreeMap<String, String>);

/// A Stripe stand-in on 127.0.0.1: records each request to
/// `/v1/checkout/sessions` and answers as Stripe does, or with `fail` when set.
pub struct FakeStripe {
    pub base: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    pub fail: Arc<Mutex<Option<(u16, Value)>>>,
}

impl FakeStripe {
    pub async fn start() -> FakeStripe {
        use axum::http::HeaderMap;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let fail: Arc<Mutex<Option<(u16, Value)>>> = Arc::new(Mutex::new(None));
        let (r2, f2) = (requests.clone(), fail.clone());
        let app = axum::Router::new().route(
            "/v1/checkout/sessions",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (requests, fail) = (r2.clone(), f2.clone());
                async move {
                    let h: BTreeMap<String, String> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect();
                    let form: BTreeMap<String, String> = body
                        .split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (decode(k), decode(v)))
                        .collect();
                    let n = {
                        let mut r = requests.lock().unwrap();
                        r.push((h, form));
                        r.len()
                    };
                    if let Some((status, body)) = fail.lock().unwrap().clone() {
                        return (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(body));
                    }
                    let id = format!("cs_test_{n:04}");
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({
                            "id": id, "object": "checkout.session",
                            "url": format!("https://checkout.stripe.test/c/pay/{id}"),
                            "payment_status": "unpaid", "status": "open",
                        })),
                    )
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        FakeStripe { base: format!("http://{addr}"), requests, fail }
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

pub fn billing_config(api_base: &str) -> BillingConfig {
    BillingConfig {
        stripe_secret_key: "sk_test_abc".into(),
        webhook_secret: WHSEC.into(),
        api_base: api_base.into(),
        ..BillingConfig::default()
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `Stripe-Signature` as Stripe computes it.
pub fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn event(id: &str, kind: &str, checkout: &str, session: &str, payment_status: &str, amount: i64) -> String {
    json!({
        "id": id, "object": "event", "type": kind, "created": now_secs(), "api_version": "2024-06-20",
        "data": {"object": {
            "id": session, "object": "checkout.session", "client_reference_id": checkout,
            "payment_status": payment_status, "amount_total": amount, "currency": "eur",
            "metadata": {"checkout_id": checkout},
        }},
    })
    .to_string()
}

impl Server {
    async fn webhook(&self, body: &str, signature: Option<String>) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url("/v1/billing/webhooks/stripe")).body(body.to_string());
        req = req.header("content-type", "application/json");
        if let Some(s) = signature {
            req = req.header("stripe-signature", s);
        }
        let resp = req.send().await.unwrap();
        let s = resp.status();
        (s, resp.json().await.unwrap_or(Value::Null))
    }

    async fn signed_webhook(&self, body: &str) -> (StatusCode, Value) {
        self.webhook(body, Some(stripe_signature(WHSEC, now_secs(), body))).await
    }

    async fn checkout(&self, token: &str, pack: &str) -> (StatusCode, Value) {
        self.call("POST", "/v1/billing/checkout-session", Some(token), Some(json!({"pack_id": pack}))).await
    }
}

/// Checkout sessions are asked of Stripe as Stripe expects; signed webhooks
/// grant a paid checkout's credits once, whatever is forged, stale, replayed
/// or out of order.
pub async fn billing(mut cfg: Config) {
    let stripe = FakeStripe::start().await;
    cfg.billing = Some(billing_config(&stripe.base));
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("buyer@example.com").await;
    let user = user_id(&token);
    assert_eq!(srv.balance(&token).await, 10);

    let (s, packs) = srv.call("GET", "/v1/billing/packs", None, None).await;
    assert_eq!(s, StatusCode::OK, "{packs}");
    assert_eq!(packs["packs"][0]["id"], "starter");
    let (credits, amount) =
        (packs["packs"][0]["credits"].as_i64().unwrap(), packs["packs"][0]["amount"].as_i64().unwrap());

    // What we send to Stripe.
    let (s, co) = srv.checkout(&token, "starter").await;
    assert_eq!(s, StatusCode::CREATED, "{co}");
    let checkout = co["checkout_id"].as_str().unwrap().to_string();
    let session = co["session_id"].as_str().unwrap().to_string();
    assert!(co["url"].as_str().unwrap().ends_with(&session));
    {
        let reqs = stripe.requests.lock().unwrap();
        let (h, form) = reqs.last().unwrap();
        assert_eq!(h["authorization"], "Bearer sk_test_abc");
        assert_eq!(h["content-type"], "application/x-www-form-urlencoded");
        assert_eq!(h["stripe-version"], splitsound_server::control::billing::STRIPE_VERSION);
        assert_eq!(h["idempotency-key"], format!("checkout-{checkout}"));
        assert_eq!(form["mode"], "payment");
        assert_eq!(form["client_reference_id"], checkout);
        assert_eq!(form["customer_email"], "buyer@example.com");
        assert_eq!(form["line_items[0][quantity]"], "1");
        assert_eq!(form["line_items[0][price_data][currency]"], "eur");
        assert_eq!(form["line_items[0][price_data][unit_amount]"], amount.to_string());
        assert_eq!(form["metadata[credits]"], credits.to_string());
        assert!(form["success_url"].starts_with(&srv.base), "{}", form["success_url"]);
    }
    let (s, e) = srv.checkout(&token, "platinum").await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_pack")));
    let (s, _) = srv.call("POST", "/v1/billing/checkout-session", None, Some(json!({"pack_id": "starter"}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Stripe refusing, or answering nonsense, is a 502 and grants nothing.
    *stripe.fail.lock().unwrap() = Some((402, json!({"error": {"type": "card_error", "message": "declined"}})));
    let (s, e) = srv.checkout(&token, "starter").await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("payment_provider_error")));
    *stripe.fail.lock().unwrap() = Some((200, json!({"object": "checkout.session"})));
    let (s, _) = srv.checkout(&token, "starter").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    *stripe.fail.lock().unwrap() = None;

    // Forged, stale, unsigned and malformed deliveries change nothing.
    let paid = event("evt_1", "checkout.session.completed", &checkout, &session, "paid", amount);
    let (s, e) = srv.webhook(&paid, Some(stripe_signature("whsec_forged", now_secs(), &paid))).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_signature")));
    let tampered = paid.replace(&amount.to_string(), "1");
    let (s, e) = srv.webhook(&tampered, Some(stripe_signature(WHSEC, now_secs(), &paid))).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_signature")));
    let (s, e) = srv.webhook(&paid, Some(stripe_signature(WHSEC, now_secs() - 301, &paid))).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("stale_signature")));
    let (s, e) = srv.webhook(&paid, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("missing_signature")));
    let (s, e) = srv.signed_webhook("{\"id\": 5}").await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_event")));
    assert_eq!(srv.balance(&token).await, 10);

    // Paid: granted; replayed, or paid again under another event id: not again.
    let (s, ack) = srv.signed_webhook(&paid).await;
    assert_eq!(s, StatusCode::OK, "{ack}");
    assert_eq!(ack["duplicate"], false);
    assert_eq!(srv.balance(&token).await, 10 + credits);
    let (s, ack) = srv.signed_webhook(&paid).await;
    assert_eq!((s, ack["duplicate"].as_bool()), (StatusCode::OK, Some(true)));
    let again = event("evt_2", "checkout.session.completed", &checkout, &session, "paid", amount);
    assert_eq!(srv.signed_webhook(&again).await.0, StatusCode::OK);
    // A late "expired" does not undo a payment.
    let expired = event("evt_3", "checkout.session.expired", &checkout, &session, "unpaid", amount);
    assert_eq!(srv.signed_webhook(&expired).await.0, StatusCode::OK);
    assert_eq!(srv.balance(&token).await, 10 + credits);

    // Out of order: the async payment's success before the checkout's completion.
    let (_, co2) = srv.checkout(&token, "starter").await;
    let (c2, s2) = (co2["checkout_id"].as_str().unwrap(), co2["session_id"].as_str().unwrap());
    let succeeded = event("evt_4", "checkout.session.async_payment_succeeded", c2, s2, "paid", amount);
    let completed = event("evt_5", "checkout.session.completed", c2, s2, "unpaid", amount);
    assert_eq!(srv.signed_webhook(&succeeded).await.0, StatusCode::OK);
    assert_eq!(srv.signed_webhook(&completed).await.0, StatusCode::OK);
    assert_eq!(srv.balance(&token).await, 10 + 2 * credits);
    let status: String = sqlx::query_scalar("SELECT status FROM checkouts WHERE id = $1")
        .bind(c2)
        .fetch_one(&srv.app.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "paid");

    // Pending, then failed: nothing. Expired: nothing. Paid the wrong amount: nothing, and flagged.
    let (_, co3) = srv.checkout(&token, "studio").await;
    let (c3, s3) = (co3["checkout_id"].as_str().unwrap(), co3["session_id"].as_str().unwrap());
    let studio_amount = packs["packs"][1]["amount"].as_i64().unwrap();
    for (id, kind, ps) in [
        ("evt_6", "checkout.session.completed", "unpaid"),
        ("evt_7", "checkout.session.async_payment_failed", "unpaid"),
    ] {
        assert_eq!(srv.signed_webhook(&event(id, kind, c3, s3, ps, studio_amount)).await.0, StatusCode::OK);
    }
    let (_, co4) = srv.checkout(&token, "studio").await;
    let (c4, s4) = (co4["checkout_id"].as_str().unwrap(), co4["session_id"].as_str().unwrap());
    let cheap = event("evt_8", "checkout.session.completed", c4, s4, "paid", 1);
    assert_eq!(srv.signed_webhook(&cheap).await.0, StatusCode::OK);
    // Events of other kinds, or for checkouts that are not ours, are acknowledged.
    let other = event("evt_9", "customer.created", c4, s4, "paid", 1);
    assert_eq!(srv.signed_webhook(&other).await.0, StatusCode::OK);
    let foreign = event("evt_10", "checkout.session.completed", "not-ours", "cs_x", "paid", amount);
    assert_eq!(srv.signed_webhook(&foreign).await.0, StatusCode::OK);
    assert_eq!(srv.balance(&token).await, 10 + 2 * credits);
    let status: String = sqlx::query_scalar("SELECT status FROM checkouts WHERE id = $1")
        .bind(c4)
        .fetch_one(&srv.app.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "mismatch");

    // Twelve deliveries at once for one paid checkout, under different event ids: one grant.
    let (_, co5) = srv.checkout(&token, "label").await;
    let (c5, s5) = (co5["checkout_id"].as_str().unwrap().to_string(), co5["session_id"].as_str().unwrap().to_string());
    let label = packs["packs"][2].clone();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let srv_http = srv.http.clone();
        let url = srv.url("/v1/billing/webhooks/stripe");
        let body = event(
            &format!("evt_c{i}"),
            "checkout.session.completed",
            &c5,
            &s5,
            "paid",
            label["amount"].as_i64().unwrap(),
        );
        tasks.push(tokio::spawn(async move {
            srv_http
                .post(url)
                .header("stripe-signature", stripe_signature(WHSEC, now_secs(), &body))
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(srv.balance(&token).await, 10 + 2 * credits + label["credits"].as_i64().unwrap());
    let purchases: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM credit_ledger WHERE user_id = $1 AND reason = 'purchase'")
            .bind(&user)
            .fetch_one(&srv.app.db.pool)
            .await
            .unwrap();
    assert_eq!(purchases, 3);
    srv.ledger_balances(&user).await;
    srv.stop().await;
}

/// Without `billing`, its endpoints say so.
pub async fn billing_disabled(cfg: Config) {
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("x@example.com").await;
    let (s, e) = srv.checkout(&token, "starter").await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("billing_disabled")));
    let (s, _) = srv.signed_webhook("{}").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    srv.stop().await;
}

/// Admin endpoints: 401 signed out, 403 for others; jobs filtered, the
/// queue's depth, refunds exactly once, business metrics.
pub async fn admin(mut cfg: Config) {
    cfg.auth.admin_emails = vec!["Ops@Example.com".into()];
    let oidc = super::Oidc::configure(&mut cfg);
    let srv = Server::start(cfg, 0).await;
    let ops = srv.oidc_login(&oidc, "ops@example.com").await;
    // The dev sign-in takes any address on trust, so it never makes an admin,
    // whatever the letter case.
    for email in ["ops@example.com", "OPS@Example.COM"] {
        let dev = srv.login(email).await;
        let (_, me) = srv.call("GET", "/v1/me", Some(&dev), None).await;
        assert_eq!(me["admin"], false, "{email}");
        let (s, _) = srv
            .call("POST", "/v1/admin/refunds", Some(&dev), Some(json!({"user_id": user_id(&dev), "credits": 1000})))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{email}");
    }
    let ann = srv.login("ann@example.com").await;
    let bob = srv.login("bob@example.com").await;
    let (ann_id, bob_id) = (user_id(&ann), user_id(&bob));
    let (_, me) = srv.call("GET", "/v1/me", Some(&ops), None).await;
    assert_eq!(me["admin"], true);
    let (_, me) = srv.call("GET", "/v1/me", Some(&ann), None).await;
    assert_eq!(me["admin"], false);
    for (m, p) in [("GET", "/v1/admin/jobs"), ("GET", "/v1/admin/queue"), ("GET", "/v1/admin/metrics")] {
        assert_eq!(srv.call(m, p, None, None).await.0, StatusCode::UNAUTHORIZED, "{p}");
        let (s, e) = srv.call(m, p, Some(&ann), None).await;
        assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{p}");
    }
    let (s, _) =
        srv.call("POST", "/v1/admin/refunds", Some(&ann), Some(json!({"user_id": ann_id, "credits": 5}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Jobs of two users, left queued (no workers).
    let t_before = splitsound_server::db::now_ms();
    let a1 = srv.asset(&ann, "a.wav", &wav(2.0, 8000)).await;
    let b1 = srv.asset(&bob, "b.wav", &wav(2.0, 8000)).await;
    let mut ids = Vec::new();
    for (tok, asset) in [(&ann, &a1), (&ann, &a1), (&bob, &b1)] {
        let (s, j) = srv.call("POST", "/v1/jobs", Some(tok), Some(json!({"asset_id": asset}))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{j}");
        ids.push(j["id"].as_str().unwrap().to_string());
    }
    let (s, c) = srv.call("POST", &format!("/v1/jobs/{}/cancel", ids[1]), Some(&ann), None).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let list = |q: String| {
        let (srv, ops) = (&srv, &ops);
        async move {
            let (s, v) = srv.call("GET", &format!("/v1/admin/jobs{q}"), Some(ops), None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(String::new()).await, vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    assert_eq!(list("?status=queued".into()).await, vec![ids[2].clone(), ids[0].clone()]);
    assert_eq!(list(format!("?user={ann_id}")).await, vec![ids[1].clone(), ids[0].clone()]);
    assert_eq!(list(format!("?user={bob_id}&status=cancelled")).await, Vec::<String>::new());
    assert_eq!(list(format!("?since={t_before}&limit=1")).await, vec![ids[2].clone()]);
    assert_eq!(list(format!("?until={t_before}")).await, Vec::<String>::new());
    let (s, e) = srv.call("GET", "/v1/admin/jobs?status=lost", Some(&ops), None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_filter")));
    let (s, e) = srv.call("GET", "/v1/admin/jobs?limit=many", Some(&ops), None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));

    let (s, q) = srv.call("GET", "/v1/admin/queue", Some(&ops), None).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(q["jobs_queued"], 2);
    // The cancelled job's message is still there until a worker drops it.
    assert!(q["visible"].as_i64().unwrap() >= 2, "{q}");
    assert!(q["oldest_age_secs"].as_f64().is_none_or(|a| a >= 0.0), "{q}");

    // A job's refund, once, and the automatic one on cancel does not add to it.
    let cost = 1;
    assert_eq!(srv.balance(&ann).await, 10 - 2 * cost + cost);
    let refund = json!({"job_id": ids[0], "note": "customer complaint"});
    let (s, r) = srv.call("POST", "/v1/admin/refunds", Some(&ops), Some(refund.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!((r["created"].as_bool(), r["balance"].as_i64()), (Some(true), Some(10)));
    let (s, r) = srv.call("POST", "/v1/admin/refunds", Some(&ops), Some(refund)).await;
    assert_eq!((s, r["created"].as_bool()), (StatusCode::OK, Some(false)));
    let (s, _) = srv.call("POST", &format!("/v1/jobs/{}/cancel", ids[0]), Some(&ann), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(srv.balance(&ann).await, 10);
    // Cancelled jobs were refunded already.
    let (s, r) = srv.call("POST", "/v1/admin/refunds", Some(&ops), Some(json!({"job_id": ids[1]}))).await;
    assert_eq!((s, r["created"].as_bool()), (StatusCode::OK, Some(false)));
    let (s, _) = srv.call("POST", "/v1/admin/refunds", Some(&ops), Some(json!({"job_id": "nope"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Grants: keyed, once per key; the same key for something else is a conflict.
    let grant = json!({"user_id": bob_id, "credits": 7});
    let (s, e) = srv.call("POST", "/v1/admin/refunds", Some(&ops), Some(grant.clone())).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("idempotency_key_required")));
    let key = [("Idempotency-Key", "ticket-42")];
    let (s, r) = srv.call_with("POST", "/v1/admin/refunds", Some(&ops), Some(grant.clone()), &key).await;
    assert_eq!((s, r["balance"].as_i64()), (StatusCode::CREATED, Some(10 - cost + 7)), "{r}");
    let (s, _) = srv.call_with("POST", "/v1/admin/refunds", Some(&ops), Some(grant), &key).await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = srv
        .call_with("POST", "/v1/admin/refunds", Some(&ops), Some(json!({"user_id": bob_id, "credits": 8})), &key)
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("idempotency_key_reused")));
    let (s, _) = srv
        .call_with(
            "POST",
            "/v1/admin/refunds",
            Some(&ops),
            Some(json!({"user_id": "ghost", "credits": 1})),
            &[("Idempotency-Key", "g")],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for bad in [
        json!({"user_id": bob_id, "credits": 0}),
        json!({"user_id": bob_id}),
        json!({"job_id": ids[0], "credits": 3}),
        json!({}),
    ] {
        let (s, _) = srv.call_with("POST", "/v1/admin/refunds", Some(&ops), Some(bad.clone()), &key).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    assert_eq!(srv.balance(&bob).await, 10 - cost + 7);

    let (s, m) = srv.call("GET", "/v1/admin/metrics", Some(&ops), None).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    // ops (OpenID Connect), ops by the dev sign-in (one user for both letter cases), ann, bob.
    assert_eq!(m["users"], 4);
    let day = &m["last_24h"];
    assert_eq!((day["jobs_created"].as_i64(), day["jobs_cancelled"].as_i64()), (Some(3), Some(2)), "{m}");
    assert_eq!((day["credits_debited"].as_i64(), day["credits_refunded"].as_i64()), (Some(3), Some(2)), "{m}");
    assert_eq!(day["new_users"], 4);
    assert_eq!(m["all_time"]["jobs_created"], 3);
    for u in [&ann_id, &bob_id] {
        srv.ledger_balances(u).await;
    }
    srv.stop().await;
}

/// Retention with the clock moved on: abandoned uploads aborted, what failed
/// jobs left deleted, then outputs, then originals, objects before rows.
pub async fn retention(cfg: Config) {
    let srv = Server::start(cfg, 0).await;
    let token = srv.login("ret@example.com").await;
    let user = user_id(&token);
    let asset = srv.asset(&token, "keep.wav", &wav(2.0, 8000)).await;
    // A job that ended without delivering, and left an object behind (as a
    // worker that crashed after uploading one stem would).
    let (s, failing) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{failing}");
    let failing = failing["id"].as_str().unwrap().to_string();
    let (s, _) = srv.call("POST", &format!("/v1/jobs/{failing}/cancel"), Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    // A job that succeeds.
    let (s, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let workers = srv.start_workers(1).await;
    let job = srv.wait_job(&token, job["id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    workers.stop().await;
    let outputs = job["outputs"].as_array().unwrap().len();
    // An upload never completed.
    let (pending, _) = srv.put_parts(&token, "never.wav", &wav(1.0, 8000), "audio/wav").await;
    let stray = splitsound_server::media::keys::output_key(&user, &failing, "vocals", "wav");
    let tmp = srv.dir.path().join("stray.wav");
    std::fs::write(&tmp, wav(0.5, 8000)).unwrap();
    srv.app.media.store.upload_file(&stray, &tmp, "audio/wav").await.unwrap();
    // On local disk, a temporary file of a write that a killed worker never finished.
    let partial = srv.app.cfg.data_dir.join("objects").join(format!("user_{user}/jobs/job_{failing}/output"));
    let partial = matches!(srv.app.media.store, splitsound_server::media::Store::Local(_)).then(|| {
        std::fs::create_dir_all(&partial).unwrap();
        let p = partial.join(".vocals.wav.4242.1.partial");
        std::fs::write(&p, b"half a stem").unwrap();
        p
    });
    let objects = || async { srv.app.media.store.list("").await.unwrap() };
    assert_eq!(objects().await.len(), 1 + outputs + 1, "{:?}", objects().await);

    let now = splitsound_server::db::now_ms();
    let day = 86_400_000;
    assert_eq!(srv.cleanup(now).await, Default::default());
    let r = srv.cleanup(now + 2 * day).await;
    assert_eq!((r.uploads_aborted, r.failed_job_objects_deleted, r.outputs_deleted, r.originals_deleted), (1, 1, 0, 0));
    assert!(!objects().await.contains(&stray));
    assert_eq!(r.stale_temp_files_deleted, usize::from(partial.is_some()));
    assert!(partial.is_none_or(|p| !p.exists()));
    let status: String = sqlx::query_scalar("SELECT status FROM uploads WHERE id = $1")
        .bind(&pending)
        .fetch_one(&srv.app.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "aborted");
    let (s, e) =
        srv.call("POST", &format!("/v1/uploads/{pending}/complete"), Some(&token), Some(json!({"parts": []}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    // Runs again find nothing more to do.
    assert_eq!(srv.cleanup(now + 2 * day).await, Default::default());

    let r = srv.cleanup(now + 8 * day).await;
    assert_eq!((r.outputs_deleted, r.originals_deleted), (outputs, 0));
    assert_eq!(objects().await.len(), 1);
    let (_, j) = srv.call("GET", &format!("/v1/jobs/{}", job["id"].as_str().unwrap()), Some(&token), None).await;
    assert_eq!(j["outputs"].as_array().unwrap().len(), 0, "{j}");
    assert_eq!((j["status"].as_str(), j["outputs_deleted"].as_bool()), (Some("succeeded"), Some(true)), "{j}");
    let (s, e) =
        srv.call("GET", &format!("/v1/jobs/{}/downloads", job["id"].as_str().unwrap()), Some(&token), None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::GONE, Some("outputs_deleted")), "{e}");

    let r = srv.cleanup(now + 31 * day).await;
    assert_eq!(r.originals_deleted, 1);
    assert!(objects().await.is_empty(), "{:?}", objects().await);
    let (_, lib) = srv.call("GET", "/v1/me/library", Some(&token), None).await;
    assert_eq!(lib["assets"].as_array().unwrap().len(), 0, "{lib}");
    srv.stop().await;
}

/// `/metrics` in Prometheus's format, request ids in answers, the OpenAPI document.
pub async fn observability(mut cfg: Config) {
    cfg.ops.metrics_token = Some("scrape-secret-0123456789".into());
    let srv = Server::start(cfg, 1).await;
    let token = srv.login("obs@example.com").await;
    let asset = srv.asset(&token, "m.wav", &wav(2.0, 8000)).await;
    let (_, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": asset}))).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(srv.wait_job(&token, &id, Duration::from_secs(60)).await["status"], "succeeded");

    // Only with the token on the API port.
    for auth in [None, Some("Bearer wrong"), Some("scrape-secret-0123456789")] {
        let mut req = srv.http.get(srv.url("/metrics"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "unauthorized");
    }
    let resp = srv.http.get(srv.url("/metrics")).bearer_auth("scrape-secret-0123456789").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text; version=1.0.0")
    );
    let text = resp.text().await.unwrap();
    for needle in [
        "# TYPE splitsound_http_request_duration_seconds histogram",
        "splitsound_http_requests_total{method=\"GET\",route=\"/v1/jobs/{id}\",status=\"200\"}",
        "splitsound_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"POST\",route=\"/v1/jobs\"} 1",
        "splitsound_job_runs_total{outcome=\"succeeded\"} 1",
        "splitsound_job_stage_duration_seconds_count{stage=\"separate\"} 1",
        "splitsound_jobs{status=\"succeeded\"} 1",
        "splitsound_queue_messages{state=\"visible\"} 0",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "an OpenMetrics exposition ends with # EOF");
    // Every sample line is `name{labels} value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = line.rsplit_once(' ').unwrap();
        assert!(v.parse::<f64>().is_ok() || v == "+Inf", "{line}");
    }

    let resp = srv.http.get(srv.url("/v1/models")).header("x-request-id", "req-abc.123").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-abc.123");
    let resp = srv.http.get(srv.url("/v1/models")).header("x-request-id", "bad id").send().await.unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(generated.len() >= 32 && generated != "bad id", "{generated}");
    let resp = srv.http.get(srv.url("/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.headers().contains_key("x-request-id"));

    let (s, doc) = srv.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc, serde_json::to_value(splitsound_server::openapi()).unwrap());
    let ops: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert!(ops >= 24, "{ops} operations");
    assert!(doc["paths"]["/v1/jobs"]["post"]["responses"]["429"].is_object());
    srv.stop().await;
}

/// Per-user and per-IP limits answer 429 with Retry-After; oversized bodies 413; both typed.
pub async fn abuse_limits(mut cfg: Config) {
    cfg.limits.rate_per_user = Rate { per_sec: 0.5, burst: 3 };
    cfg.limits.rate_per_ip = Rate { per_sec: 0.5, burst: 8 };
    cfg.limits.client_ip_header = Some("x-forwarded-for".into());
    cfg.ops.metrics_token = Some("scrape-secret-0123456789".into());
    let srv = Server::start(cfg, 0).await;
    let ip = |n: u8| format!("10.0.0.1, 203.0.113.{n}");
    let login = |email: &'static str, n: u8| {
        let srv = &srv;
        async move {
            let (s, v) = srv
                .call_with(
                    "POST",
                    "/v1/auth/dev/login",
                    None,
                    Some(json!({"email": email})),
                    &[("x-forwarded-for", &ip(n))],
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["token"].as_str().unwrap().to_string()
        }
    };
    let (amy, ben) = (login("amy@example.com", 1).await, login("ben@example.com", 2).await);
    // Per user: three, then 429, whatever address amy comes from; ben is unaffected.
    for n in 0..3 {
        let (s, _) = srv.call_with("GET", "/v1/me", Some(&amy), None, &[("x-forwarded-for", &ip(10 + n))]).await;
        assert_eq!(s, StatusCode::OK);
    }
    let resp =
        srv.http.get(srv.url("/v1/me")).bearer_auth(&amy).header("x-forwarded-for", ip(20)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        srv.call_with("GET", "/v1/me", Some(&ben), None, &[("x-forwarded-for", &ip(30))]).await.0,
        StatusCode::OK
    );
    // Per address: eight from one, then 429; another address is fine.
    for _ in 0..8 {
        assert_eq!(
            srv.call_with("GET", "/v1/models", None, None, &[("x-forwarded-for", &ip(40))]).await.0,
            StatusCode::OK
        );
    }
    let (s, e) = srv.call_with("GET", "/v1/models", None, None, &[("x-forwarded-for", &ip(40))]).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    assert_eq!(srv.call_with("GET", "/v1/models", None, None, &[("x-forwarded-for", &ip(41))]).await.0, StatusCode::OK);
    // Health is never limited.
    for _ in 0..20 {
        assert_eq!(
            srv.call_with("GET", "/health", None, None, &[("x-forwarded-for", &ip(40))]).await.0,
            StatusCode::OK
        );
    }
    // After a wait, tokens are back.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        srv.call_with("GET", "/v1/me", Some(&amy), None, &[("x-forwarded-for", &ip(50))]).await.0,
        StatusCode::OK
    );

    // A body over the limit: 413, typed.
    let big = json!({"email": "x".repeat(70 * 1024)});
    let (s, e) = srv.call_with("POST", "/v1/auth/dev/login", None, Some(big), &[("x-forwarded-for", &ip(60))]).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large")), "{e}");
    let metrics = srv
        .http
        .get(srv.url("/metrics"))
        .bearer_auth("scrape-secret-0123456789")
        .header("x-forwarded-for", ip(70))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("splitsound_rate_limited_total{limit=\"user\"} 1"), "{metrics}");
    assert!(metrics.contains("splitsound_rate_limited_total{limit=\"ip\"} 1"), "{metrics}");
    srv.stop().await;
}

/// What a careful attacker tries, and the answers they must get: sessions of
/// users that no longer exist, hostile file names, errors the framework
/// writes, the headers of every kind of answer, an `alg: none` token, the
/// stems of a deleted upload, and `/metrics` without its token.
pub async fn hardening(cfg: Config) {
    let srv = Server::start(cfg, 1).await;
    let local = matches!(srv.app.media.store, splitsound_server::media::Store::Local(_));
    let token = srv.login("eve@example.com").await;
    let nosniff = |h: &reqwest::header::HeaderMap, what: &str| {
        assert_eq!(h.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{what}");
    };
    let no_store = |h: &reqwest::header::HeaderMap, what: &str| {
        assert_eq!(h.get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"), "{what}");
    };

    // A validly signed session whose user does not exist: 401 on every
    // operation that needs a session, never a 500.
    let (ghost, _) = srv.app.control.auth.issue(&splitsound_server::db::new_id(), "ghost@example.com", true).unwrap();
    let doc = serde_json::to_value(splitsound_server::openapi()).unwrap();
    let mut secured = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"].as_array().is_none_or(|s| s.is_empty()) {
                continue;
            }
            let path: String =
                path.split('/').map(|c| if c.starts_with('{') { "x" } else { c }).collect::<Vec<_>>().join("/");
            let (s, e) = srv
                .call_with(&method.to_uppercase(), &path, Some(&ghost), Some(json!({})), &[("Idempotency-Key", "k")])
                .await;
            assert_eq!(
                (s, e["error"]["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{method} {path}: {e}"
            );
            secured += 1;
        }
    }
    assert!(secured >= 15, "{secured} secured operations");

    // An unsigned token (`alg: none`): refused in the API's own words.
    let b64 = |v: Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(
            json!({"sub": user_id(&token), "email": "eve@example.com", "admin": true, "iat": 0, "exp": 4102444800u64, "iss": "splitsound"})
        )
    );
    let (s, e) = srv.call("GET", "/v1/me", Some(&none), None).await;
    assert_eq!((s, e["error"]["message"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid session token")), "{e}");

    // Hostile file names become safe display names once, at upload.
    let long = format!("{}.wav", "n".repeat(1000));
    let mut assets = Vec::new();
    for (name, shown) in [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\..\\boot.ini", "boot.ini"),
        ("a\r\nb\u{0}c\u{7}.wav", "abc.wav"),
        ("evil\u{202E}vaw.exe", "evilvaw.exe"),
        (long.as_str(), ""),
    ] {
        let (s, v) = srv.upload(&token, name, &wav(0.5, 8000), "audio/wav").await;
        assert_eq!(s, StatusCode::CREATED, "{name:?}: {v}");
        let got = v["asset"]["filename"].as_str().unwrap();
        if shown.is_empty() {
            assert_eq!(got.chars().count(), 120, "{got}");
            assert!(got.ends_with(".wav"), "{got}");
        } else {
            assert_eq!(got, shown, "{name:?}");
        }
        assets.push(v["asset"]["id"].as_str().unwrap().to_string());
    }
    // Objects live under <data_dir>/objects.
    if local {
        let key: String = sqlx::query("SELECT object_key FROM media_assets WHERE id = $1")
            .bind(&assets[0])
            .fetch_one(&srv.app.db.pool)
            .await
            .unwrap()
            .get(0);
        assert!(srv.app.cfg.data_dir.join("objects").join(&key).is_file(), "{key}");
    }
    let (s, job) = srv.call("POST", "/v1/jobs", Some(&token), Some(json!({"asset_id": assets[0]}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let job = job["id"].as_str().unwrap().to_string();
    assert_eq!(srv.wait_job(&token, &job, Duration::from_secs(60)).await["status"], "succeeded");
    let resp = srv.http.get(srv.url(&format!("/v1/jobs/{job}/downloads"))).bearer_auth(&token).send().await.unwrap();
    nosniff(resp.headers(), "downloads");
    no_store(resp.headers(), "downloads");
    let downloads: Value = resp.json().await.unwrap();
    for stem in downloads["stems"].as_array().unwrap() {
        assert_eq!(stem["filename"], format!("passwd - {}.wav", stem["stem"].as_str().unwrap()));
        let (s, h, _) = srv.get_bytes(stem["url"].as_str().unwrap()).await;
        assert_eq!(s, StatusCode::OK);
        let cd = h["content-disposition"].to_str().unwrap();
        assert!(!cd.contains('/') && !cd.contains("%2F") && !cd.contains("%0D") && !cd.contains("%00"), "{cd}");
        if local {
            nosniff(&h, "a signed download");
        }
    }

    // The stems of a deleted upload: the job says so, and its URLs are gone.
    let (s, v) = srv.call("DELETE", &format!("/v1/me/library/{}", assets[0]), Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, j) = srv.call("GET", &format!("/v1/jobs/{job}"), Some(&token), None).await;
    assert_eq!(j["outputs_deleted"], true, "{j}");
    for what in ["downloads", "preview"] {
        let (s, e) = srv.call("GET", &format!("/v1/jobs/{job}/{what}"), Some(&token), None).await;
        assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::GONE, Some("outputs_deleted")), "{what}: {e}");
    }

    // Every kind of answer: JSON errors, nosniff, and no-store unless the answer sets its own caching.
    let resp =
        srv.http.post(srv.url("/v1/auth/dev/login")).json(&json!({"email": "eve@example.com"})).send().await.unwrap();
    nosniff(resp.headers(), "sign-in");
    no_store(resp.headers(), "sign-in (carries the session token)");
    for (method, path, status, code) in [
        ("GET", "/v1/me", StatusCode::OK, None),
        ("GET", "/health", StatusCode::OK, None),
        ("GET", "/v1/openapi.json", StatusCode::OK, None),
        ("GET", "/nowhere", StatusCode::NOT_FOUND, Some("not_found")),
        ("DELETE", "/v1/models", StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")),
        ("GET", "/metrics", StatusCode::NOT_FOUND, Some("not_found")),
    ] {
        let resp = srv.http.request(method.parse().unwrap(), srv.url(path)).bearer_auth(&token).send().await.unwrap();
        let what = format!("{method} {path}");
        assert_eq!(resp.status(), status, "{what}");
        nosniff(resp.headers(), &what);
        no_store(resp.headers(), &what);
        let body: Value = resp.json().await.unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        assert_eq!(body["error"]["code"].as_str(), code, "{what}: {body}");
    }
    let resp = srv.http.get(srv.url("/")).send().await.unwrap();
    nosniff(resp.headers(), "the web UI");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    if local {
        // A part larger than the part size: the same JSON error format.
        let (s, init) = srv
            .call(
                "POST",
                "/v1/uploads/initialize",
                Some(&token),
                Some(json!({"filename": "p.wav", "size": 10, "content_type": "audio/wav"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{init}");
        let url = init["parts"][0]["url"].as_str().unwrap();
        let too_big = vec![0u8; srv.app.cfg.limits.part_size as usize + 128 * 1024];
        let resp = srv.http.put(url).body(too_big).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        nosniff(resp.headers(), "413");
        let e: Value = resp.json().await.expect("a JSON error");
        assert_eq!(e["error"]["code"], "body_too_large", "{e}");
    }
    srv.stop().await;
}
