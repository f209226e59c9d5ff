//! `open-cli runtime info`.

use open_cli_config::wire::RuntimeInfo;

use crate::args::Format;
use crate::client::Client;
use crate::error::CliError;
use crate::output;

pub fn info(client: &Client, format: Format) -> Result<String, CliError> {
    let info = client.info()?;
    if let Some(text) = output::machine(format, &info)? {
        return Ok(text);
    }
    Ok(output::pairs(&rows(&info)))
}

fn rows(info: &RuntimeInfo) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("url", info.url.clone()),
        ("instance", info.instance_id.clone()),
        (
            "version",
            format!(
                "{} (contract {})",
                info.version.as_deref().unwrap_or("unknown"),
                info.contract_version
            ),
        ),
        ("capabilities", info.capabilities.join(", ")),
        (
            "auth",
            if info.auth.required {
                format!(
                    "required ({})",
                    info.auth.token_validation_profiles.join(", ")
                )
            } else {
                "not required".into()
            },
        ),
    ];
    if let Some(c) = &info.catalog {
        rows.push((
            "catalog",
            format!(
                "{} tools in {} services; views: {}",
                c.tools,
                c.services,
                c.views.join(", ")
            ),
        ));
        rows.push(("generated", c.generated_at.clone()));
    }
    if let Some(p) = &info.config_path {
        rows.push(("config", p.clone()));
    }
    rows
}
