use open_cli_product_tests::{Fixture, Runtime, TestApi};
use serde_json::{Value, json};

const PETS: &str = "openapi: 3.0.3\ninfo: {title: Pets, version: '1'}\npaths:\n  /pets:\n    get: {operationId: listPets, responses: {'200': {description: ok}}}\n    post: {operationId: createPet, responses: {'201': {description: ok}}}\n";
const STORES: &str = r#"{"openapi": "3.1.0", "info": {"title": "Stores", "version": "1"},
  "paths": {"/stores": {"get": {"operationId": "listStores", "responses": {"200": {"description": "ok"}}}}}}"#;

/// A document server publishing two APIs: `pets` behind a service root (with service-meta
/// enrichments) and `stores` by a direct service-desc link, in two catalogs that link to
/// each other (a cycle).
fn publish() -> (Fixture, TestApi) {
    let d = Fixture::new();
    d.write("pets/openapi.yaml", PETS);
    d.write("pets/root", "pets service root\n");
    d.write_json(
        "pets/root.meta.json",
        &json!({"headers": {"Link": ["</docs/pets/openapi.yaml>; rel=\"service-desc\"; type=\"application/yaml\"",
                                     "<meta.linkset.json>; rel=\"service-meta\""]}}),
    );
    d.write_json(
        "pets/meta.linkset.json",
        &json!({"linkset": [{"anchor": "root",
            "https://open-cli.dev/rel/schema-overlay": [{"href": "overlay.yaml"}],
            "https://open-cli.dev/rel/skill-manifest": [{"href": "skill.json"}],
            "https://open-cli.dev/rel/workflows": [{"href": "flows.yaml"}]}]}),
    );
    d.write(
        "pets/overlay.yaml",
        "overlay: 1.0.0\nactions:\n  - target: \"$.paths['/pets'].get\"\n    update: {x-cli-name: ls}\n",
    );
    d.write_json(
        "pets/skill.json",
        &json!({"oasCliSkill": "1.0.0", "serviceId": "pets", "toolGuidance": {"createPet": {"whenToUse": ["adopting"]}}}),
    );
    d.write("pets/flows.yaml", "workflows:\n  - workflowId: adopt\n    steps:\n      - {stepId: look, operationId: listPets}\n      - {stepId: take, operationPath: 'POST /pets'}\n");
    d.write("stores/openapi.json", STORES);
    d.write_json(
        "catalog.json",
        &json!({"linkset": [{"anchor": "/docs/catalog.json",
            "item": [{"href": "/docs/pets/root"}],
            "api-catalog": [{"href": "nested.json"}]}]}),
    );
    d.write_json(
        "nested.json",
        &json!({"linkset": [
            {"anchor": "/docs/stores", "service-desc": [{"href": "/docs/stores/openapi.json"}]},
            {"anchor": "/docs/nested.json", "api-catalog": [{"href": "/docs/catalog.json"}]}]}),
    );
    let api = TestApi::start_with_docs(d.path());
    (d, api)
}

fn config(source: Value, services: Value) -> (Fixture, std::path::PathBuf) {
    let fx = Fixture::new();
    let cfg = fx.write_json(
        ".cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"}, "sources": {"src": source}, "services": services}),
    );
    (fx, cfg)
}

fn ids(cat: &Value) -> Vec<String> {
    cat["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_service_root_leads_to_its_description_and_metadata() {
    let (_d, api) = publish();
    let (_fx, cfg) = config(
        json!({"type": "serviceRoot", "uri": format!("{}/docs/pets/root", api.url)}),
        json!({}),
    );
    let rt = Runtime::start(&cfg);
    let cat = rt.catalog();
    assert_eq!(ids(&cat), ["pets:createPet", "pets:listPets"]);
    let tools = cat["catalog"]["tools"].as_array().unwrap();
    assert_eq!(tools[1]["command"], "ls", "overlay from service-meta");
    assert_eq!(
        tools[0]["guidance"]["whenToUse"],
        json!(["adopting"]),
        "skill from service-meta"
    );
    assert_eq!(
        cat["catalog"]["workflows"][0]["steps"][1]["toolId"],
        "pets:createPet"
    );
    let src = &cat["catalog"]["sources"][0];
    assert_eq!(src["type"], "serviceRoot");
    assert_eq!(src["provenance"]["method"], "rfc8631");
    let fetches = src["provenance"]["fetches"].as_array().unwrap();
    assert_eq!(fetches[0]["requestMethod"], "HEAD");
    assert_eq!(fetches[0]["url"], format!("{}/docs/pets/root", api.url));
    let urls: Vec<&str> = fetches.iter().map(|f| f["url"].as_str().unwrap()).collect();
    for doc in [
        "pets/meta.linkset.json",
        "pets/openapi.yaml",
        "pets/overlay.yaml",
        "pets/skill.json",
        "pets/flows.yaml",
    ] {
        assert!(
            urls.contains(&format!("{}/docs/{doc}", api.url).as_str()),
            "{doc} not in {urls:?}"
        );
    }
}

#[test]
fn an_api_catalog_expands_nested_catalogs_and_stops_at_cycles() {
    let (_d, api) = publish();
    let (_fx, cfg) = config(
        json!({"type": "apiCatalog", "uri": format!("{}/docs/catalog.json", api.url)}),
        json!({}),
    );
    let rt = Runtime::start(&cfg);
    let cat = rt.catalog();
    assert_eq!(
        ids(&cat),
        ["pets:createPet", "pets:listPets", "stores:listStores"]
    );
    let services: Vec<&str> = cat["catalog"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["pets", "stores"]);
    assert_eq!(
        cat["catalog"]["sources"][0]["provenance"]["method"],
        "rfc9727"
    );
    // Each catalog was fetched once although they link to each other.
    assert_eq!(api.requests_for("/docs/catalog.json").len(), 1);
    assert_eq!(api.requests_for("/docs/nested.json").len(), 1);
    let accept = &api.requests_for("/docs/catalog.json")[0]["headers"]["accept"];
    assert!(
        accept
            .as_str()
            .unwrap()
            .starts_with("application/linkset+json"),
        "{accept}"
    );
}

#[test]
fn a_service_may_reference_an_api_catalog() {
    let (_d, api) = publish();
    let (_fx, cfg) = config(
        json!({"type": "apiCatalog", "uri": format!("{}/docs/catalog.json", api.url)}),
        json!({"shop": {"source": "src", "alias": "s"}}),
    );
    let rt = Runtime::start(&cfg);
    let cat = rt.catalog();
    assert_eq!(
        ids(&cat),
        [
            "shop.pets:createPet",
            "shop.pets:listPets",
            "shop.stores:listStores"
        ]
    );
    let aliases: Vec<&str> = cat["catalog"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["alias"].as_str().unwrap())
        .collect();
    assert_eq!(aliases, ["s.pets", "s.stores"]);
}

#[test]
fn a_service_root_without_a_description_link_is_an_error() {
    let (d, api) = publish();
    d.write("bare/root", "nothing here\n");
    let (_fx, cfg) = config(
        json!({"type": "serviceRoot", "uri": format!("{}/docs/bare/root", api.url)}),
        json!({}),
    );
    let err = open_cli_product_tests::validate_fails(&cfg);
    assert!(
        err.contains("advertises no `Link: <…>; rel=\"service-desc\"` (RFC 8631)"),
        "{err}"
    );
}
