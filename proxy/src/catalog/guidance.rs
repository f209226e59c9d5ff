//! Skill manifests (per-tool guidance) and workflows (Arazzo-style step lists) attached to a
//! service (contract §1.8, Agent Profile).
//!
//! Both are strict where the reference is lenient: guidance for a tool that does not exist, a
//! manifest for another service, and a workflow step that binds to no operation all fail the
//! build, naming the document, workflow and step.

use open_cli_config::ntc::{Guidance, Tool, Workflow, WorkflowStep};
use serde_json::Value;

use super::openapi::string_list;

/// Attach a skill manifest's `toolGuidance` to the tools of `service_id`. Keys are tool IDs
/// (`svc:op`) or, as a shorthand, operation identities without the service prefix. `known_as`
/// is the service's ID as its publisher knows it (discovered services may be namespaced here,
/// `shop.pets`, while their manifest says `pets`); both names are accepted.
pub fn apply_skill(
    tools: &mut [Tool],
    service_id: &str,
    known_as: &str,
    manifest: &Value,
    name: &str,
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for key in ["oasCliSkill", "serviceId", "toolGuidance"] {
        if manifest.get(key).is_none() {
            problems.push(format!("skill manifest {name}: `{key}` is required"));
        }
    }
    if let Some(sid) = manifest.get("serviceId").and_then(Value::as_str)
        && sid != service_id
        && sid != known_as
    {
        problems.push(format!(
            "skill manifest {name}: `serviceId` is `{sid}` but it is attached to service `{service_id}`"
        ));
    }
    let Some(guidance) = manifest.get("toolGuidance").and_then(Value::as_object) else {
        if manifest.get("toolGuidance").is_some() {
            problems.push(format!(
                "skill manifest {name}: `toolGuidance` must be an object"
            ));
        }
        return Err(problems);
    };
    for (key, g) in guidance {
        let op = [service_id, known_as]
            .iter()
            .find_map(|s| key.strip_prefix(&format!("{s}:")))
            .unwrap_or(key);
        let id = format!("{service_id}:{op}");
        match tools.iter_mut().find(|t| t.id == id) {
            Some(tool) => {
                tool.guidance = Some(Guidance {
                    when_to_use: string_list(g.get("whenToUse")),
                    avoid_when: string_list(g.get("avoidWhen")),
                    examples: g
                        .get("examples")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                })
            }
            None => problems.push(format!(
                "skill manifest {name}: toolGuidance `{key}` names no tool of service `{service_id}`"
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Bind the workflows of an Arazzo-style document to tools of `service_id`. A step names its
/// operation by `operationId` (optionally `$sourceDescriptions.<name>.<operationId>`) or by
/// `operationPath`: `"GET /tickets"` or a JSON pointer `...#/paths/~1tickets/get`.
pub fn bind_workflows(
    tools: &[Tool],
    service_id: &str,
    doc: &Value,
    name: &str,
) -> Result<Vec<Workflow>, Vec<String>> {
    let Some(workflows) = doc.get("workflows").and_then(Value::as_array) else {
        return Err(vec![format!(
            "workflow document {name}: `workflows` must be an array"
        )]);
    };
    let own: Vec<&Tool> = tools
        .iter()
        .filter(|t| t.service_id == service_id)
        .collect();
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (wi, wf) in workflows.iter().enumerate() {
        let Some(id) = wf.get("workflowId").and_then(Value::as_str) else {
            problems.push(format!(
                "workflow document {name}: workflows[{wi}]: `workflowId` is required"
            ));
            continue;
        };
        let mut steps = Vec::new();
        for (si, step) in wf
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let step_id = step
                .get("stepId")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("#{si}"));
            let at = format!("workflow document {name}: workflow `{id}` step `{step_id}`");
            match bind_step(&own, step) {
                Ok(tool_id) => steps.push(WorkflowStep { step_id, tool_id }),
                Err(e) => problems.push(format!("{at}: {e}")),
            }
        }
        if steps.is_empty() && problems.is_empty() {
            problems.push(format!(
                "workflow document {name}: workflow `{id}` has no steps"
            ));
        }
        out.push(Workflow {
            workflow_id: id.to_string(),
            steps,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn bind_step(tools: &[&Tool], step: &Value) -> Result<String, String> {
    if let Some(op) = step.get("operationId").and_then(Value::as_str) {
        let bare = op.rsplit('.').next().unwrap_or(op);
        let bare = if op.starts_with("$sourceDescriptions.") {
            bare
        } else {
            op
        };
        return tools
            .iter()
            .find(|t| t.operation_id.as_deref() == Some(bare))
            .map(|t| t.id.clone())
            .ok_or_else(|| format!("operationId `{op}` matches no operation of the service"));
    }
    if let Some(path) = step.get("operationPath").and_then(Value::as_str) {
        let (method, p) = parse_operation_path(path)?;
        return tools
            .iter()
            .find(|t| t.method.eq_ignore_ascii_case(&method) && t.path == p)
            .map(|t| t.id.clone())
            .ok_or_else(|| {
                format!("operationPath `{path}` ({method} {p}) matches no operation of the service")
            });
    }
    if step.get("workflowId").is_some() {
        return Err(
            "steps that call other workflows are not supported; list the operations".into(),
        );
    }
    Err("needs `operationId` or `operationPath`".into())
}

/// `"GET /tickets"` or `"<anything>#/paths/~1tickets/get"`.
fn parse_operation_path(s: &str) -> Result<(String, String), String> {
    if let Some((_, pointer)) = s.split_once("#/paths/") {
        let (raw_path, method) = pointer
            .rsplit_once('/')
            .ok_or_else(|| format!("`{s}` is not a `#/paths/<path>/<method>` pointer"))?;
        let path = raw_path.replace("~1", "/").replace("~0", "~");
        return Ok((method.to_ascii_uppercase(), path));
    }
    match s.split_once(' ') {
        Some((m, p)) if p.starts_with('/') => Ok((m.to_ascii_uppercase(), p.trim().to_string())),
        _ => Err(format!(
            "`{s}` is neither `METHOD /path` nor a `#/paths/...` pointer"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_paths_in_both_forms() {
        assert_eq!(
            parse_operation_path("get /tickets/{id}").unwrap(),
            ("GET".into(), "/tickets/{id}".into())
        );
        assert_eq!(
            parse_operation_path("{$sourceDescriptions.t.url}#/paths/~1tickets~1{id}/delete")
                .unwrap(),
            ("DELETE".into(), "/tickets/{id}".into())
        );
        assert!(parse_operation_path("tickets").is_err());
    }
}
