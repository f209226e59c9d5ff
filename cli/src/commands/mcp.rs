//! `open-cli mcp`: the runtime's MCP endpoint (`<runtime>/mcp`, streamable HTTP) and
//! configuration snippets for agent hosts, for the runtime's auth mode.
//!
//! With runtime auth on, the snippets send `Authorization: Bearer` with a placeholder (an
//! environment variable: the one of a `providedToken` `env:NAME`, else `OPEN_CLI_TOKEN`);
//! `--with-token` embeds the token this client would send instead. Hosts that implement MCP
//! authorization can leave the header out when the runtime publishes RFC 9728 metadata.

use open_cli_config::LoadedConfig;
use open_cli_config::model::RemoteOAuthMode;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::args::{Format, McpArgs, McpHost};
use crate::client::Client;
use crate::commands::exec::Reply;
use crate::error::CliError;
use crate::output;

/// The variable the snippets name when the client config names none.
pub const DEFAULT_TOKEN_ENV: &str = crate::token::TOKEN_ENV;
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// What the snippets send as `Authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    /// Runtime auth is off: no header.
    None,
    /// A placeholder naming this environment variable.
    Env(String),
    /// This token, verbatim (`--with-token`).
    Token(String),
}

/// The machine-readable answer (`--format json|yaml`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Setup {
    /// The server name in the snippets (`--name`).
    pub name: String,
    /// The MCP endpoint.
    pub url: String,
    /// Always `streamable-http`.
    pub transport: &'static str,
    /// The runtime it belongs to.
    pub runtime: String,
    pub auth: AuthSummary,
    /// Host → snippet: `generic` and `vscode` are JSON documents, `claude-code` a command line.
    pub snippets: Map<String, Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSummary {
    /// Whether the runtime requires a token.
    pub required: bool,
    /// `bearer` or `none`.
    pub scheme: &'static str,
    pub token_validation_profiles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Where this client gets its runtime token: `none`, `providedToken`, `oauthClient` or
    /// `browserLogin` (`runtime.remote.oauth.mode`).
    pub token_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_from: Option<String>,
    /// The environment variable the snippets' placeholder names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Whether the snippets hold a real token (`--with-token`).
    pub token_embedded: bool,
    /// RFC 9728 metadata, when the runtime publishes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthDiscovery>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthDiscovery {
    /// The protected-resource metadata URL that answered.
    pub resource_metadata: String,
    pub authorization_servers: Vec<String>,
}

pub fn run(
    client: &Client,
    config: Option<&LoadedConfig>,
    args: &McpArgs,
    format: Format,
) -> Result<Reply, CliError> {
    let name = args.name.trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(
            CliError::usage(format!("--name `{}` is not a server name", args.name))
                .hint("use a short name such as open-cli"),
        );
    }
    // Also the reachability check: an unreachable runtime fails here, naming its URL.
    let info = client.info()?;
    let url = mcp_url(client.base());
    let (token_source, token_from) = describe_source(client, config);
    let env = token_env(config);
    let mut notes = Vec::new();
    let bearer = if !info.auth.required {
        if args.with_token {
            notes.push("note: the runtime does not require a token; none embedded".to_string());
        }
        Bearer::None
    } else if args.with_token {
        let token = client.token()?.ok_or_else(|| {
            CliError::usage("--with-token: this client has no runtime token to embed")
                .hint("configure runtime.remote.oauth in the client config (providedToken or oauthClient)")
        })?;
        notes.push(format!(
            "warning: the snippets embed a runtime token: treat them as a secret{}",
            if token_source == "oauthClient" {
                "; it stops working when the token expires"
            } else {
                ""
            }
        ));
        Bearer::Token(token)
    } else {
        Bearer::Env(env.clone())
    };
    let oauth = if info.auth.required {
        discover(client, &url)
    } else {
        None
    };
    let setup = Setup {
        name: name.to_string(),
        snippets: snippets(name, &url, &bearer, args.host),
        url,
        transport: "streamable-http",
        runtime: client.base().to_string(),
        auth: AuthSummary {
            required: info.auth.required,
            scheme: if info.auth.required { "bearer" } else { "none" },
            token_validation_profiles: info.auth.token_validation_profiles.clone(),
            audience: info.auth.audience.clone(),
            token_source,
            token_from,
            token_env: matches!(bearer, Bearer::Env(_)).then_some(env),
            token_embedded: matches!(bearer, Bearer::Token(_)),
            oauth,
        },
    };
    let stdout = match output::machine(format, &setup)? {
        Some(text) => text,
        None => render_text(&setup)?,
    };
    Ok(Reply {
        stdout,
        stderr: (!notes.is_empty()).then(|| notes.join("\n")),
        exit: crate::error::exit::OK,
    })
}

/// `<runtime>/mcp`.
pub fn mcp_url(base: &str) -> String {
    format!("{}/mcp", base.trim_end_matches('/'))
}

/// The RFC 9728 metadata URLs of the resource `url`, most specific first: the well-known
/// path inserted between the origin and the resource's path, then the one for the runtime's
/// base (the resource without `/mcp`).
pub fn metadata_urls(url: &str) -> Vec<String> {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let split = url[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(url.len());
    let (origin, path) = url.split_at(split);
    let mut urls = vec![format!("{origin}{WELL_KNOWN}{path}")];
    let base = path.strip_suffix("/mcp").unwrap_or(path);
    let root = format!("{origin}{WELL_KNOWN}{base}");
    if !urls.contains(&root) {
        urls.push(root);
    }
    urls
}

fn discover(client: &Client, url: &str) -> Option<OAuthDiscovery> {
    metadata_urls(url).into_iter().find_map(|m| {
        let doc = client.probe_json(&m)?;
        let servers: Vec<String> = doc
            .get("authorization_servers")?
            .as_array()?
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        (!servers.is_empty()).then_some(OAuthDiscovery {
            resource_metadata: m,
            authorization_servers: servers,
        })
    })
}

/// Where this client's runtime token comes from, without resolving it (`auth status` terms).
fn describe_source(
    client: &Client,
    config: Option<&LoadedConfig>,
) -> (&'static str, Option<String>) {
    match client.auth().map(|a| a.describe(client.base())) {
        Some(("none", _)) | None => {}
        Some(known) => return known,
    }
    let Some(oauth) = remote_oauth(config) else {
        return ("none", None);
    };
    let from = match oauth.mode {
        RemoteOAuthMode::ProvidedToken => oauth.token_ref.clone(),
        RemoteOAuthMode::OAuthClient => oauth.client.as_ref().map(|c| c.token_url.clone()),
        RemoteOAuthMode::BrowserLogin => None,
    };
    (oauth.mode.as_str(), from)
}

fn remote_oauth(config: Option<&LoadedConfig>) -> Option<&open_cli_config::model::RemoteOAuth> {
    config?
        .config
        .runtime
        .as_ref()?
        .remote
        .as_ref()?
        .oauth
        .as_ref()
}

/// The variable of a `providedToken` `env:NAME`, else [`DEFAULT_TOKEN_ENV`].
fn token_env(config: Option<&LoadedConfig>) -> String {
    remote_oauth(config)
        .filter(|o| o.mode == RemoteOAuthMode::ProvidedToken)
        .and_then(|o| o.token_ref.as_deref())
        .and_then(|r| r.strip_prefix("env:"))
        .filter(|n| is_env_name(n))
        .unwrap_or(DEFAULT_TOKEN_ENV)
        .to_string()
}

fn is_env_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const HOSTS: [(McpHost, &str); 3] = [
    (McpHost::Generic, "generic"),
    (McpHost::Vscode, "vscode"),
    (McpHost::ClaudeCode, "claude-code"),
];

/// The snippets of `host` (every host for `all`), keyed by host name.
pub fn snippets(name: &str, url: &str, bearer: &Bearer, host: McpHost) -> Map<String, Value> {
    HOSTS
        .iter()
        .filter(|(h, _)| host == McpHost::All || host == *h)
        .map(|(h, key)| {
            let v = match h {
                McpHost::Generic => generic(name, url, bearer),
                McpHost::Vscode => vscode(name, url, bearer),
                McpHost::ClaudeCode | McpHost::All => Value::String(claude_code(name, url, bearer)),
            };
            (key.to_string(), v)
        })
        .collect()
}

/// `{"mcpServers": {<name>: {"type": "http", "url", "headers"?}}}`.
pub fn generic(name: &str, url: &str, bearer: &Bearer) -> Value {
    let header = match bearer {
        Bearer::None => None,
        Bearer::Env(env) => Some(format!("Bearer ${{{env}}}")),
        Bearer::Token(t) => Some(format!("Bearer {t}")),
    };
    json!({"mcpServers": {name: server(url, header)}})
}

/// VS Code's `.vscode/mcp.json`: `{"inputs"?, "servers": {<name>: {…}}}`. The placeholder is
/// a password input VS Code asks for once and stores.
pub fn vscode(name: &str, url: &str, bearer: &Bearer) -> Value {
    let input = format!("{name}-token");
    let header = match bearer {
        Bearer::None => None,
        Bearer::Env(_) => Some(format!("Bearer ${{input:{input}}}")),
        Bearer::Token(t) => Some(format!("Bearer {t}")),
    };
    let mut doc = Map::new();
    if matches!(bearer, Bearer::Env(_)) {
        doc.insert(
            "inputs".into(),
            json!([{"type": "promptString", "id": input,
                    "description": format!("open-cli runtime token for {name}"), "password": true}]),
        );
    }
    doc.insert("servers".into(), json!({name: server(url, header)}));
    Value::Object(doc)
}

fn server(url: &str, authorization: Option<String>) -> Value {
    let mut s = json!({"type": "http", "url": url});
    if let Some(a) = authorization {
        s["headers"] = json!({"Authorization": a});
    }
    s
}

/// `claude mcp add --transport http <name> <url> [--header …]`, quoted for a POSIX shell. The
/// placeholder is expanded by the shell when the command runs.
pub fn claude_code(name: &str, url: &str, bearer: &Bearer) -> String {
    let mut cmd = format!(
        "claude mcp add --transport http {} {}",
        shell_quote(name),
        shell_quote(url)
    );
    match bearer {
        Bearer::None => {}
        Bearer::Env(env) => cmd.push_str(&format!(" --header \"Authorization: Bearer ${env}\"")),
        Bearer::Token(t) => cmd.push_str(&format!(
            " --header {}",
            shell_quote(&format!("Authorization: Bearer {t}"))
        )),
    }
    cmd
}

/// `s` as one POSIX shell word.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The human form: endpoint, auth mode, then each snippet under a heading.
pub fn render_text(setup: &Setup) -> Result<String, CliError> {
    let a = &setup.auth;
    let mut rows = vec![
        ("mcp", format!("{} (streamable HTTP)", setup.url)),
        (
            "auth",
            if a.required {
                format!(
                    "bearer token required ({})",
                    a.token_validation_profiles.join(", ")
                )
            } else {
                "none (the runtime does not require a token)".into()
            },
        ),
    ];
    if a.required {
        if let Some(aud) = &a.audience {
            rows.push(("audience", aud.clone()));
        }
        rows.push((
            "token",
            match (&a.token_from, a.token_embedded) {
                (_, true) => format!("{} (embedded below: a secret)", a.token_source),
                (Some(f), false) => format!("{} ({f})", a.token_source),
                (None, false) if a.token_source == "none" => {
                    "none configured in this client (runtime.remote.oauth)".into()
                }
                (None, false) => a.token_source.to_string(),
            },
        ));
    }
    let mut out = output::pairs(&rows);
    if let Some(env) = &a.token_env {
        out.push_str(&format!(
            "\nThe snippets read the token from ${env}: set it in the host's environment \
(hosts that do not expand variables need the token pasted in, or `--with-token`).\n"
        ));
    }
    if let Some(o) = &a.oauth {
        out.push_str(&format!(
            "\nHosts that support MCP authorization can leave the Authorization header out: they \
discover the authorization server ({}) from {}\n",
            o.authorization_servers.join(", "),
            o.resource_metadata
        ));
    }
    for (key, snippet) in &setup.snippets {
        let heading = match key.as_str() {
            "generic" => {
                "Claude Desktop, Cursor, Windsurf and other hosts with an `mcpServers` file"
            }
            "vscode" => "VS Code: .vscode/mcp.json",
            "claude-code" => "Claude Code",
            other => other,
        };
        let body = match snippet {
            Value::String(s) => s.clone(),
            v => serde_json::to_string_pretty(v).map_err(|e| {
                CliError::new(crate::error::exit::PROTOCOL, "cannot encode a snippet")
                    .cause(e.to_string())
            })?,
        };
        out.push_str(&format!("\n# {heading}\n{body}\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:8765/mcp";

    fn env() -> Bearer {
        Bearer::Env(DEFAULT_TOKEN_ENV.into())
    }

    #[test]
    fn the_generic_snippet_sends_a_placeholder_header_only_with_auth_on() {
        assert_eq!(
            generic("open-cli", URL, &Bearer::None),
            json!({"mcpServers": {"open-cli": {"type": "http", "url": URL}}})
        );
        assert_eq!(
            generic("open-cli", URL, &env()),
            json!({"mcpServers": {"open-cli": {"type": "http", "url": URL,
                "headers": {"Authorization": "Bearer ${OPEN_CLI_TOKEN}"}}}})
        );
        assert_eq!(
            generic("x", URL, &Bearer::Token("t0k".into())),
            json!({"mcpServers": {"x": {"type": "http", "url": URL,
                "headers": {"Authorization": "Bearer t0k"}}}})
        );
    }

    #[test]
    fn the_vscode_snippet_asks_for_the_token_as_a_password_input() {
        assert_eq!(
            vscode("open-cli", URL, &Bearer::None),
            json!({"servers": {"open-cli": {"type": "http", "url": URL}}})
        );
        let v = vscode("open-cli", URL, &env());
        assert_eq!(
            v,
            json!({"inputs": [{"type": "promptString", "id": "open-cli-token",
                    "description": "open-cli runtime token for open-cli", "password": true}],
                   "servers": {"open-cli": {"type": "http", "url": URL,
                    "headers": {"Authorization": "Bearer ${input:open-cli-token}"}}}})
        );
        let v = vscode("open-cli", URL, &Bearer::Token("t0k".into()));
        assert!(v.get("inputs").is_none(), "{v}");
        assert_eq!(
            v["servers"]["open-cli"]["headers"]["Authorization"],
            "Bearer t0k"
        );
    }

    #[test]
    fn the_claude_code_command_is_quoted_for_the_shell() {
        assert_eq!(
            claude_code("open-cli", URL, &Bearer::None),
            "claude mcp add --transport http open-cli http://127.0.0.1:8765/mcp"
        );
        assert_eq!(
            claude_code("open-cli", URL, &Bearer::Env("MY_TOKEN".into())),
            "claude mcp add --transport http open-cli http://127.0.0.1:8765/mcp --header \"Authorization: Bearer $MY_TOKEN\""
        );
        assert_eq!(
            claude_code("my tools", URL, &Bearer::Token("a'b".into())),
            r"claude mcp add --transport http 'my tools' http://127.0.0.1:8765/mcp --header 'Authorization: Bearer a'\''b'"
        );
    }

    #[test]
    fn hosts_select_snippets() {
        let all = snippets("open-cli", URL, &env(), McpHost::All);
        assert_eq!(
            all.keys().collect::<Vec<_>>(),
            ["generic", "vscode", "claude-code"]
        );
        assert!(all["claude-code"].is_string());
        let one = snippets("open-cli", URL, &env(), McpHost::Vscode);
        assert_eq!(one.keys().collect::<Vec<_>>(), ["vscode"]);
        let one = snippets("open-cli", URL, &env(), McpHost::ClaudeCode);
        assert_eq!(one.keys().collect::<Vec<_>>(), ["claude-code"]);
    }

    #[test]
    fn urls_and_metadata_locations() {
        assert_eq!(mcp_url("http://h:1/"), "http://h:1/mcp");
        assert_eq!(
            metadata_urls("http://h:1/mcp"),
            [
                "http://h:1/.well-known/oauth-protected-resource/mcp",
                "http://h:1/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            metadata_urls("https://h/toolbox/mcp"),
            [
                "https://h/.well-known/oauth-protected-resource/toolbox/mcp",
                "https://h/.well-known/oauth-protected-resource/toolbox"
            ]
        );
        assert!(is_env_name("OC_TOKEN_1") && !is_env_name("1X") && !is_env_name("A-B"));
    }

    fn setup(bearer: &Bearer, oauth: Option<OAuthDiscovery>) -> Setup {
        let required = *bearer != Bearer::None;
        Setup {
            name: "open-cli".into(),
            url: URL.into(),
            transport: "streamable-http",
            runtime: "http://127.0.0.1:8765".into(),
            auth: AuthSummary {
                required,
                scheme: if required { "bearer" } else { "none" },
                token_validation_profiles: if required {
                    vec!["oidc_jwks".into()]
                } else {
                    vec![]
                },
                audience: required.then(|| "api://rt".into()),
                token_source: if required { "providedToken" } else { "none" },
                token_from: required.then(|| "env:OPEN_CLI_TOKEN".into()),
                token_env: match bearer {
                    Bearer::Env(e) => Some(e.clone()),
                    _ => None,
                },
                token_embedded: matches!(bearer, Bearer::Token(_)),
                oauth,
            },
            snippets: snippets("open-cli", URL, bearer, McpHost::All),
        }
    }

    #[test]
    fn text_with_auth_off_has_no_header_and_no_token_talk() {
        let t = render_text(&setup(&Bearer::None, None)).unwrap();
        assert!(
            t.starts_with("mcp   http://127.0.0.1:8765/mcp (streamable HTTP)\n"),
            "{t}"
        );
        assert!(t.contains("auth  none"), "{t}");
        assert!(
            !t.contains("Authorization") && !t.contains("OPEN_CLI_TOKEN"),
            "{t}"
        );
        for heading in [
            "# Claude Desktop",
            "# VS Code: .vscode/mcp.json",
            "# Claude Code\n",
        ] {
            assert!(t.contains(heading), "{heading}: {t}");
        }
    }

    #[test]
    fn text_with_auth_on_names_the_placeholder_and_oauth_discovery() {
        let oauth = OAuthDiscovery {
            resource_metadata: "http://127.0.0.1:8765/.well-known/oauth-protected-resource/mcp"
                .into(),
            authorization_servers: vec!["https://idp.example".into()],
        };
        let t = render_text(&setup(&env(), Some(oauth))).unwrap();
        assert!(t.contains("bearer token required (oidc_jwks)"), "{t}");
        assert!(
            t.contains("token     providedToken (env:OPEN_CLI_TOKEN)"),
            "{t}"
        );
        assert!(t.contains("$OPEN_CLI_TOKEN"), "{t}");
        assert!(
            t.contains("\"Authorization\": \"Bearer ${OPEN_CLI_TOKEN}\""),
            "{t}"
        );
        assert!(
            t.contains("(https://idp.example) from http://127.0.0.1:8765/.well-known/oauth-protected-resource/mcp"),
            "{t}"
        );
    }

    #[test]
    fn text_with_an_embedded_token_says_it_is_a_secret() {
        let t = render_text(&setup(&Bearer::Token("t0k".into()), None)).unwrap();
        assert!(t.contains("embedded below: a secret"), "{t}");
        assert!(t.contains("Bearer t0k"), "{t}");
        assert!(!t.contains("${OPEN_CLI_TOKEN}"), "{t}");
    }

    #[test]
    fn json_is_url_auth_and_snippets() {
        let v = serde_json::to_value(setup(&env(), None)).unwrap();
        assert_eq!(v["url"], URL);
        assert_eq!(v["auth"]["required"], true);
        assert_eq!(v["auth"]["scheme"], "bearer");
        assert_eq!(v["auth"]["tokenEnv"], "OPEN_CLI_TOKEN");
        assert_eq!(v["auth"]["tokenEmbedded"], false);
        assert!(v["auth"].get("oauth").is_none());
        assert_eq!(
            v["snippets"]["generic"]["mcpServers"]["open-cli"]["url"],
            URL
        );
        let v = serde_json::to_value(setup(&Bearer::None, None)).unwrap();
        assert_eq!(v["auth"]["scheme"], "none");
        assert!(v["auth"].get("tokenEnv").is_none());
    }
}
