use open_cli_product_tests::{Fixture, Runtime, TestApi};
use serde_json::{Value, json};

const TICKETS: &str = r#"openapi: 3.1.0
info: {title: Tickets, version: '1'}
servers: [{url: 'https://tickets.example.test'}]
paths:
  /tickets:
    get:
      operationId: listTickets
      tags: [tickets]
      parameters:
        - {name: status, in: query, schema: {type: string}}
      responses: {'200': {description: ok}}
  /tickets/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get:
      operationId: getTicket
      tags: [tickets]
      responses: {'200': {description: ok}}
    delete:
      operationId: deleteTicket
      tags: [tickets]
      responses: {'204': {description: gone}}
"#;

const OVERLAY: &str = r#"overlay: 1.0.0
info: {title: tickets tweaks, version: '1'}
actions:
  - target: "$.paths['/tickets'].get"
    update:
      x-cli-name: list
      x-cli-safety: {requiresApproval: false, readOnly: true}
  - target: "$.paths['/tickets'].get.parameters[?(@.name=='status')]"
    update: {x-cli-name: state}
  - target: "$.paths['/tickets/{id}'].delete"
    update:
      x-cli-safety: {requiresApproval: true}
"#;

const SKILL: &str = r#"{
  "oasCliSkill": "1.0.0",
  "serviceId": "tickets",
  "toolGuidance": {
    "tickets:listTickets": {"whenToUse": ["find open tickets"], "avoidWhen": ["you know the ID"],
                            "examples": [{"goal": "open tickets", "command": "open-cli tickets tickets list --state open"}]},
    "getTicket": {"whenToUse": ["read one ticket"]}
  }
}"#;

const WORKFLOW: &str = r#"arazzo: 1.0.1
info: {title: triage, version: '1'}
sourceDescriptions: [{name: tickets, url: tickets.yaml, type: openapi}]
workflows:
  - workflowId: triageTicket
    steps:
      - {stepId: find, operationId: listTickets}
      - {stepId: inspect, operationPath: 'GET /tickets/{id}'}
      - {stepId: close, operationPath: '{$sourceDescriptions.tickets.url}#/paths/~1tickets~1{id}/delete'}
"#;

fn project(services: Value) -> (Fixture, std::path::PathBuf) {
    let fx = Fixture::new();
    fx.write("tickets.yaml", TICKETS);
    fx.write("tickets.overlay.yaml", OVERLAY);
    fx.write("tickets.skill.json", SKILL);
    fx.write("tickets.arazzo.yaml", WORKFLOW);
    let cfg = fx.write_json(
        ".cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"},
                "sources": {"tickets": {"type": "openapi", "uri": "tickets.yaml"}},
                "services": services,
                "curation": {"toolSets": {"sandbox": {"allow": ["tickets:*"], "deny": ["tickets:delete*"]}}},
                "agents": {"profiles": {"sandbox": {"mode": "curated", "toolSet": "sandbox"}}}}),
    );
    (fx, cfg)
}

fn full_service() -> Value {
    json!({"tickets": {"source": "tickets", "alias": "tix",
        "overlays": ["tickets.overlay.yaml"], "skills": ["tickets.skill.json"], "workflows": ["tickets.arazzo.yaml"]}})
}

#[test]
fn overlays_skills_and_workflows_shape_the_catalog() {
    let (_fx, cfg) = project(full_service());
    let rt = Runtime::start(&cfg);
    let body = rt.catalog();
    let cat = &body["catalog"];
    let tool = |id: &str| {
        cat["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    // Overlay: command renamed, flag renamed, safety changed — before normalisation.
    let list = tool("tickets:listTickets");
    assert_eq!(list["command"], "list");
    assert_eq!(list["flags"][0]["name"], "state");
    assert_eq!(list["flags"][0]["originalName"], "status");
    assert_eq!(
        tool("tickets:deleteTicket")["safety"]["requiresApproval"],
        true
    );
    // Skills: guidance by full tool ID and by operation shorthand.
    assert_eq!(list["guidance"]["whenToUse"], json!(["find open tickets"]));
    assert_eq!(list["guidance"]["avoidWhen"], json!(["you know the ID"]));
    assert_eq!(list["guidance"]["examples"][0]["goal"], "open tickets");
    assert_eq!(
        tool("tickets:getTicket")["guidance"]["whenToUse"],
        json!(["read one ticket"])
    );
    // Workflows: steps bound by operationId, "METHOD /path" and JSON pointer.
    assert_eq!(
        cat["workflows"],
        json!([{"workflowId": "triageTicket", "steps": [
            {"stepId": "find", "toolId": "tickets:listTickets"},
            {"stepId": "inspect", "toolId": "tickets:getTicket"},
            {"stepId": "close", "toolId": "tickets:deleteTicket"}]}])
    );
    // Curated view: allow `tickets:*`, deny `tickets:delete*`.
    let sandbox = rt.effective("?agentProfile=sandbox");
    let ids: Vec<&str> = sandbox["view"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tickets:getTicket", "tickets:listTickets"]);
    assert_eq!(cat["services"][0]["alias"], "tix");
}

#[test]
fn the_same_source_serves_two_services_with_different_overlays() {
    let (_fx, cfg) = project(json!({
        "tickets": {"source": "tickets", "overlays": ["tickets.overlay.yaml"]},
        "plain": {"source": "tickets"}
    }));
    let rt = Runtime::start(&cfg);
    let cat = rt.catalog();
    let commands: Vec<(String, String)> = cat["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["operationId"] == "listTickets")
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["command"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        commands,
        [
            ("plain:listTickets".to_string(), "list-tickets".to_string()),
            ("tickets:listTickets".to_string(), "list".to_string())
        ]
    );
}

#[test]
fn remote_overlays_are_fetched_and_recorded() {
    let docs = Fixture::new();
    docs.write("tickets.overlay.yaml", OVERLAY);
    let api = TestApi::start_with_docs(docs.path());
    let overlay_url = format!("{}/docs/tickets.overlay.yaml", api.url);
    let (_fx, cfg) = project(json!({"tickets": {"source": "tickets", "overlays": [overlay_url]}}));
    let rt = Runtime::start(&cfg);
    let cat = rt.catalog();
    let fetches = cat["catalog"]["sources"][0]["provenance"]["fetches"]
        .as_array()
        .unwrap();
    assert_eq!(fetches.len(), 1);
    assert_eq!(fetches[0]["url"], overlay_url);
    assert_eq!(fetches[0]["cacheOutcome"], "miss");
    let list = cat["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "tickets:listTickets")
        .unwrap()
        .clone();
    assert_eq!(list["command"], "list");
}

#[test]
fn broken_enrichments_fail_the_build_with_their_document_and_step_named() {
    let (fx, cfg) = project(full_service());
    fx.write(
        "tickets.overlay.yaml",
        "overlay: 1.0.0\nactions:\n  - target: \"$.paths['/renamed'].get\"\n    update: {x-cli-name: list}\n",
    );
    fx.write(
        "tickets.skill.json",
        r#"{"oasCliSkill": "1", "serviceId": "tickets", "toolGuidance": {"nope": {}}}"#,
    );
    fx.write(
        "tickets.arazzo.yaml",
        "workflows:\n  - workflowId: triageTicket\n    steps:\n      - {stepId: find, operationId: listTickets}\n      - {stepId: escalate, operationId: escalateTicket}\n",
    );
    let err = open_cli_product_tests::validate_fails(&cfg);
    let overlay = fx.path().join("tickets.overlay.yaml").display().to_string();
    for want in [
        format!("overlay {overlay}: actions[0]: target `$.paths['/renamed'].get` matches nothing in the document"),
        "toolGuidance `nope` names no tool of service `tickets`".to_string(),
        "workflow `triageTicket` step `escalate`: operationId `escalateTicket` matches no operation of the service".to_string(),
    ] {
        assert!(err.contains(&want), "missing `{want}` in:\n{err}");
    }
}
