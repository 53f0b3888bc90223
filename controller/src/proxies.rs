//! The proxies' admin API, as the controller calls it: today, rolling a
//! migration's reads back to the source on every replica it is told of.
//!
//! Once the control store carries the proxies' heartbeats, the list of
//! replicas comes from there; until then the operator names them.

use std::time::Duration;

/// What one proxy answered.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Answer {
    /// The proxy's admin address.
    pub proxy: String,
    /// Whether it took the change.
    pub ok: bool,
    /// Its status and message, or why it could not be reached.
    pub detail: String,
}

/// Sets migration `id`'s reads to the source on every proxy in `admins`
/// (`http://host:port` of each admin listener), with `token` as the
/// bearer token where one is set. Every proxy is tried; the answers say
/// which took it.
pub async fn roll_back_reads(admins: &[String], token: Option<&str>, id: &str) -> Vec<Answer> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let body = serde_json::json!({ "strategy": "immediate", "path": "source" });
    let mut answers = Vec::with_capacity(admins.len());
    for admin in admins {
        let url = format!("{}/migrations/{id}/reads", admin.trim_end_matches('/'));
        let mut request = client.put(&url).json(&body);
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            request = request.bearer_auth(token);
        }
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                Answer {
                    proxy: admin.clone(),
                    ok: status.is_success(),
                    detail: format!("{status} {text}"),
                }
            }
            Err(e) => Answer {
                proxy: admin.clone(),
                ok: false,
                detail: format!("unreachable: {e}"),
            },
        };
        answers.push(answer);
    }
    answers
}
