//! `--jq EXPR`: filter a command's JSON output with a jq program, in process (jaq, a jq
//! implementation in Rust: no `jq` binary needed). Each output value is printed as JSON on its
//! own line, as `jq -c` does; a program that does not compile is a usage error naming why,
//! and one that fails on the input (`error(…)`, a type error) an error of the command.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;

use crate::error::CliError;

/// `program` over the JSON text `input`: its outputs, one compact JSON value per line.
pub fn filter(program: &str, input: &str) -> Result<String, CliError> {
    let value = jaq_json::read::parse_single(input.as_bytes()).map_err(|e| {
        CliError::usage("--jq needs JSON output, and this is not JSON").cause(e.to_string())
    })?;
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: program,
                path: (),
            },
        )
        .map_err(|errs| {
            CliError::usage(format!("--jq `{program}` does not parse"))
                .cause(format!("{} problem(s) in the program", errs.len()))
        })?;
    let compiled = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| {
            let names: Vec<String> = errs
                .iter()
                .flat_map(|(_, es)| es.iter().map(|(name, _)| format!("`{name}`")))
                .collect();
            CliError::usage(format!("--jq `{program}` does not compile"))
                .cause(format!("undefined: {}", names.join(", ")))
        })?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&compiled.lut, Vars::new([]));
    let mut out = String::new();
    for result in compiled.id.run((ctx, value)).map(unwrap_valr) {
        match result {
            Ok(v) => {
                out.push_str(&v.to_string());
                out.push('\n');
            }
            Err(e) => {
                return Err(CliError::new(
                    crate::error::exit::USAGE,
                    format!("--jq `{program}` failed on the output"),
                )
                .cause(e.to_string()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_print_one_value_per_line() {
        let input = r#"{"items":[{"id":1,"name":"a"},{"id":2,"name":"b"}]}"#;
        assert_eq!(filter(".items[].id", input).unwrap(), "1\n2\n");
        assert_eq!(
            filter("[.items[] | select(.id > 1) | .name]", input).unwrap(),
            "[\"b\"]\n"
        );
        assert_eq!(filter(".items | length", input).unwrap(), "2\n");
        assert!(filter(".items[", input).is_err());
        assert!(filter("nosuchfn", input).is_err());
        assert!(filter(".", "not json").is_err());
    }
}
