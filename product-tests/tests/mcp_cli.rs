use open_cli_product_tests::{
    AUDIENCE, Fixture, KeyedIssuer, TestApi, cli, start_demo_runtime, start_demo_runtime_with, text,
};
use serde_json::{Value, json};

fn mcp_json(args: &[&str], env: &[(&str, &str)]) -> (Value, String) {
    let mut all = vec!["mcp", "--format", "json"];
    all.extend_from_slice(args);
    let out = cli(&all, env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", text(&out.stdout));
    });
    (v, text(&out.stderr))
}

#[test]
fn mcp_prints_the_endpoint_and_header_free_snippets_without_runtime_auth() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let url = format!("{}/mcp", rt.url);

    let (v, err) = mcp_json(&["--runtime", &rt.url], &[]);
    assert!(err.is_empty(), "nothing on stderr: {err}");
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["runtime"], rt.url.as_str());
    assert_eq!(v["transport"], "streamable-http");
    assert_eq!(v["auth"]["required"], false);
    assert_eq!(v["auth"]["scheme"], "none");
    assert_eq!(v["auth"]["tokenEmbedded"], false);
    assert!(v["auth"].get("oauth").is_none(), "{v}");
    assert_eq!(
        v["snippets"]["generic"],
        json!({"mcpServers": {"open-cli": {"type": "http", "url": url}}})
    );
    assert_eq!(
        v["snippets"]["vscode"],
        json!({"servers": {"open-cli": {"type": "http", "url": url}}})
    );
    assert_eq!(
        v["snippets"]["claude-code"],
        format!("claude mcp add --transport http open-cli {url}").as_str()
    );

    // One host, another name; the runtime from the environment like every command.
    let (v, _) = mcp_json(
        &["--host", "claude-code", "--name", "tools"],
        &[("OPEN_CLI_RUNTIME_URL", &rt.url)],
    );
    let hosts: Vec<&String> = v["snippets"].as_object().unwrap().keys().collect();
    assert_eq!(hosts, ["claude-code"]);
    assert_eq!(
        v["snippets"]["claude-code"],
        format!("claude mcp add --transport http tools {url}").as_str()
    );

    // The human form.
    let out = cli(&["--runtime", &rt.url, "mcp", "--format", "table"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.contains(&format!("{url} (streamable HTTP)")), "{t}");
    assert!(t.contains("# VS Code: .vscode/mcp.json"), "{t}");
    assert!(!t.contains("Authorization"), "{t}");

    // An unreachable runtime is named, exit 3.
    let out = cli(&["--runtime", "http://127.0.0.1:9", "mcp"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot reach the runtime at http://127.0.0.1:9"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn mcp_snippets_carry_a_bearer_placeholder_or_the_real_token_with_runtime_auth() {
    let api = TestApi::start();
    let issuer = KeyedIssuer::start();
    let (_fx, rt) = start_demo_runtime_with(&api, json!({"auth": issuer.auth()}));
    let url = format!("{}/mcp", rt.url);

    // No client token configured: a placeholder, never a token.
    let (v, _) = mcp_json(&["--runtime", &rt.url], &[]);
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["auth"]["required"], true);
    assert_eq!(v["auth"]["scheme"], "bearer");
    assert_eq!(v["auth"]["tokenValidationProfiles"], json!(["oidc_jwks"]));
    assert_eq!(v["auth"]["audience"], AUDIENCE);
    assert_eq!(v["auth"]["tokenSource"], "none");
    assert_eq!(v["auth"]["tokenEnv"], "OPEN_CLI_TOKEN");
    assert_eq!(v["auth"]["tokenEmbedded"], false);
    assert_eq!(
        v["snippets"]["generic"],
        json!({"mcpServers": {"open-cli": {"type": "http", "url": url,
            "headers": {"Authorization": "Bearer ${OPEN_CLI_TOKEN}"}}}})
    );
    assert_eq!(
        v["snippets"]["vscode"]["servers"]["open-cli"]["headers"]["Authorization"],
        "Bearer ${input:open-cli-token}"
    );
    assert_eq!(
        v["snippets"]["claude-code"],
        format!(
            "claude mcp add --transport http open-cli {url} --header \"Authorization: Bearer $OPEN_CLI_TOKEN\""
        )
        .as_str()
    );
    // RFC 9728 metadata names the trusted issuer, for hosts that implement MCP authorization.
    let o = &v["auth"]["oauth"];
    assert_eq!(
        o["resourceMetadata"],
        format!("{}/.well-known/oauth-protected-resource/mcp", rt.url).as_str()
    );
    assert_eq!(o["authorizationServers"], json!([issuer.oidc.issuer]));

    // A providedToken client config: the placeholder names its variable, which need not be
    // set while no token is embedded.
    let client = Fixture::new();
    let cfg = client
        .write_json(
            "client.cli.json",
            &json!({"cli": "1.0.0", "mode": {"default": "discover"}, "runtime": {"remote": {"url": rt.url,
                "oauth": {"mode": "providedToken", "tokenRef": "env:OC_MCP_TOKEN"}}}}),
        )
        .display()
        .to_string();
    let (v, _) = mcp_json(&["--config", &cfg], &[]);
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["auth"]["tokenSource"], "providedToken");
    assert_eq!(v["auth"]["tokenFrom"], "env:OC_MCP_TOKEN");
    assert_eq!(v["auth"]["tokenEnv"], "OC_MCP_TOKEN");
    assert_eq!(
        v["snippets"]["generic"]["mcpServers"]["open-cli"]["headers"]["Authorization"],
        "Bearer ${OC_MCP_TOKEN}"
    );

    // --with-token embeds the token the CLI sends, and warns that the output is a secret.
    let token = issuer.token("agent-1", "bundle:demo");
    let (v, err) = mcp_json(
        &["--config", &cfg, "--with-token"],
        &[("OC_MCP_TOKEN", &token)],
    );
    assert!(err.contains("warning:") && err.contains("secret"), "{err}");
    assert!(!err.contains(&token), "the token stays off stderr");
    assert_eq!(v["auth"]["tokenEmbedded"], true);
    assert!(v["auth"].get("tokenEnv").is_none(), "{v}");
    let bearer = format!("Bearer {token}");
    assert_eq!(
        v["snippets"]["generic"]["mcpServers"]["open-cli"]["headers"]["Authorization"],
        bearer.as_str()
    );
    assert_eq!(
        v["snippets"]["vscode"]["servers"]["open-cli"]["headers"]["Authorization"],
        bearer.as_str()
    );
    assert!(v["snippets"]["vscode"].get("inputs").is_none());
    assert!(
        v["snippets"]["claude-code"]
            .as_str()
            .unwrap()
            .ends_with(&format!("--header 'Authorization: Bearer {token}'")),
        "{v}"
    );

    // A token the runtime refuses is not embedded; with none at all, --with-token is a
    // usage error.
    let out = cli(
        &["--config", &cfg, "mcp", "--with-token"],
        &[("OC_MCP_TOKEN", "garbage")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("authn_failed"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let out = cli(&["--runtime", &rt.url, "mcp", "--with-token"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no runtime token to embed"),
        "{}",
        text(&out.stderr)
    );
}
