//! `open-cli config show`.

use open_cli_config::LoadedConfig;

use crate::args::Format;
use crate::error::CliError;
use crate::output;

pub fn show(loaded: Option<&LoadedConfig>, format: Format) -> Result<String, CliError> {
    let loaded = loaded.ok_or_else(|| {
        CliError::usage("no client config found")
            .hint("pass --config FILE, or run in a directory with a .cli.json")
    })?;
    if let Some(text) = output::machine(format, &open_cli_config::show::effective(loaded))? {
        return Ok(text);
    }
    Ok(open_cli_config::show::render_text(loaded))
}
