use std::path::Path;
use std::process::Command;
use std::time::Duration;

use open_cli_product_tests::{
    Fixture, Oidc, Proc, TestApi, bin, demo_config, isolate, repo_root, text, wait_200, wait_for,
};
use serde::Deserialize as _;
use serde_json::{Value, json};

/// The shipped unit with the binary's path pointing at this build.
fn unit(dir: &Path) -> (std::path::PathBuf, String) {
    let shipped =
        std::fs::read_to_string(repo_root().join("deploy/systemd/open-cli-toolbox.service"))
            .unwrap();
    let text = shipped.replace(
        "/usr/local/bin/open-cli-toolbox",
        bin("open-cli-toolbox").to_str().unwrap(),
    );
    let path = dir.join("open-cli-toolbox.service");
    std::fs::write(&path, &text).unwrap();
    (path, shipped)
}

/// `deploy/systemd/open-cli-toolbox.service` is a valid unit (`systemd-analyze verify`: no
/// warning) whose exposure (`systemd-analyze security`) is at most 2.0, with the settings the
/// hardening relies on.
#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let fx = Fixture::new();
    let (path, shipped) = unit(fx.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/deps installs systemd)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr).trim(), "", "verify warns");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .unwrap();
    let report = text(&out.stdout);
    let level: f64 = report
        .lines()
        .find_map(|l| {
            l.split("exposure level for open-cli-toolbox.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}{}", text(&out.stderr)));
    println!("systemd-analyze security: exposure {level}");
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{report}");
    for setting in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "StateDirectory=open-cli",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(shipped.contains(setting), "the unit lacks {setting:?}");
    }
}

/// The unit's own command line (`ExecStartPre`, `ExecStart` with `%H` and
/// `${STATE_DIRECTORY}` filled in as systemd would, the address made free) runs: the config
/// validates, the runtime serves, answers SIGHUP (`ExecReload`) by rebuilding and keeps
/// serving, and stops on SIGTERM within `TimeoutStopSec`.
#[test]
fn the_systemd_units_command_lines_run() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let config = fx.write_json(".cli.json", &demo_config(json!({})));
    let (path, _) = unit(fx.path());
    let unit_text = std::fs::read_to_string(&path).unwrap();
    let state = fx.path().join("state");
    let port = open_cli_product_tests::free_port();
    // Joined continuation lines, variables as systemd fills them.
    let joined = unit_text.replace("\\\n", " ");
    let line = |key: &str| -> Vec<String> {
        let l = joined
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}"));
        l.replace("/etc/open-cli/.cli.json", config.to_str().unwrap())
            .replace("${STATE_DIRECTORY}", state.to_str().unwrap())
            .replace("%H", "host-1")
            .replace("127.0.0.1:8765", &format!("127.0.0.1:{port}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let pre = line("ExecStartPre=");
    let mut cmd = Command::new(&pre[0]);
    isolate(&mut cmd);
    let out = cmd.args(&pre[1..]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let start = line("ExecStart=");
    let mut cmd = Command::new(&start[0]);
    isolate(&mut cmd);
    cmd.args(&start[1..]);
    let mut rt = Proc::spawn("open-cli-toolbox", cmd);
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let ready = |rt: &Proc| wait_200(&readyz, Duration::from_secs(30), rt);
    ready(&rt);
    wait_for("runtime.json", Duration::from_secs(30), || {
        state
            .join("instances/host-1/runtime.json")
            .exists()
            .then_some(())
    })
    .unwrap();
    // ExecReload: SIGHUP rebuilds the catalog; it keeps serving.
    rt.signal(libc::SIGHUP);
    wait_for("the SIGHUP rebuild", Duration::from_secs(30), || {
        rt.stderr().contains("SIGHUP").then_some(())
    })
    .unwrap();
    ready(&rt);
    rt.signal(libc::SIGTERM);
    let status = rt.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{}", rt.logs());
}

/// `deploy/kubernetes/render.py ARGS…`.
fn render(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new("python3")
        .arg(repo_root().join("deploy/kubernetes/render.py"))
        .args(args)
        .output()
        .unwrap()
}

/// The overlay scheme refuses what would otherwise be silently ignored: a value that marks no
/// line (a typo), a block given as a plain value, a missing file; `--list` names every value.
#[test]
fn kubernetes_overlays_refuse_unknown_values() {
    let fx = Fixture::new();
    let base = repo_root().join("deploy/kubernetes/sidecar.yaml");
    let listed = render(&["--list".as_ref(), base.as_os_str()]);
    assert!(listed.status.success());
    let names: Vec<String> = text(&listed.stdout)
        .lines()
        .map(|l| l.split('=').next().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["apiImage", "config", "image", "replicas", "upstreamApiKey"]
    );
    for (values, message) in [
        (
            "imagee=x\n",
            "values.env:1: `imagee` is not a value of sidecar.yaml (its values: apiImage, config, image, replicas, upstreamApiKey)",
        ),
        (
            "config={}\n",
            "values.env:1: `config` is a block; give a file: config=@FILE",
        ),
        ("config=@missing.json\n", "missing.json: no such file"),
        (
            "replicas=3\nreplicas=4\n",
            "values.env:2: `replicas` is set twice",
        ),
    ] {
        fx.write("values.env", values);
        let out = render(&[base.as_os_str(), fx.path().as_os_str()]);
        assert_eq!(out.status.code(), Some(2), "{values}");
        let err = text(&out.stderr);
        assert!(err.contains(message), "{values}: {err}");
        assert!(out.stdout.is_empty());
    }
}

/// The objects of a multi-document YAML file.
fn objects(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn kind<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// Lay out a ConfigMap's or Secret's data under `dir` as the kubelet does: the files are
/// symbolic links through `..data` to a timestamped directory.
fn project(dir: &Path, data: &serde_json::Map<String, Value>, rewrite: &dyn Fn(&str) -> String) {
    let stamp = dir.join("..2026_12_06_00_00_00.000000000");
    std::fs::create_dir_all(&stamp).unwrap();
    std::os::unix::fs::symlink(stamp.file_name().unwrap(), dir.join("..data")).unwrap();
    for (key, value) in data {
        std::fs::write(stamp.join(key), rewrite(value.as_str().unwrap())).unwrap();
        std::os::unix::fs::symlink(Path::new("..data").join(key), dir.join(key)).unwrap();
    }
}

/// Everything `deploy/kubernetes/` ships validates against the Kubernetes schemas
/// (`kubernetes-validate --strict`; the ServiceMonitor, a Prometheus Operator resource, is
/// checked by hand), and each manifest's runtime container runs for real: its ConfigMap and
/// Secret laid out as the kubelet mounts them, its arguments, its probes answering 200 on its
/// declared port, its upstream secret injected, and its shutdown inside the pod's grace period.
#[test]
fn kubernetes_manifests_validate_and_their_runtime_runs_as_declared() {
    let dir = repo_root().join("deploy/kubernetes");
    // The shipped manifests, and the sidecar rendered with the example overlay.
    let rendered = Fixture::new();
    let staging = rendered.path().join("orders-staging/sidecar.yaml");
    std::fs::create_dir_all(staging.parent().unwrap()).unwrap();
    let overlay = dir.join("overlays/orders-staging");
    let out = render(&[dir.join("sidecar.yaml").as_os_str(), overlay.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(&staging, &out.stdout).unwrap();
    let files = [
        dir.join("sidecar.yaml"),
        dir.join("shared.yaml"),
        staging.clone(),
    ];
    let validate = repo_root().join("product-tests/kubernetes/venv/bin/kubernetes-validate");
    assert!(
        validate.exists(),
        "kubernetes-validate is missing: run scripts/deps"
    );
    let out = Command::new(&validate)
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("ERROR"), "{report}");
    assert_eq!(
        report.matches("passed for resource").count(),
        15,
        "{report}"
    );
    // The overlay changed its values, and only them.
    let (base, staged) = (objects(&dir.join("sidecar.yaml")), objects(&staging));
    let spec = |objs: &[Value]| kind(objs, "Deployment")["spec"].clone();
    assert_eq!(spec(&staged)["replicas"], 3);
    assert_eq!(
        spec(&staged)["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/orders-api:1.4.2"
    );
    let config = |objs: &[Value]| -> Value {
        serde_json::from_str(
            kind(objs, "ConfigMap")["data"][".cli.json"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    };
    let overlay_config: Value =
        serde_json::from_str(&std::fs::read_to_string(overlay.join("cli.json")).unwrap()).unwrap();
    assert_eq!(config(&staged), overlay_config);
    let mut unchanged = spec(&base);
    unchanged["replicas"] = json!(3);
    unchanged["template"]["spec"]["containers"][0]["image"] =
        json!("registry.example.com/orders-api:1.4.2");
    assert_eq!(spec(&staged), unchanged);
    assert_eq!(kind(&staged, "Service"), kind(&base, "Service"));

    let api = TestApi::start();
    let oidc = Oidc::start("bundle:orders bundle:inventory metrics:read", &[]);
    for file in &files {
        let objs = objects(file);
        let deployment = kind(&objs, "Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        let c = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "open-cli")
            .unwrap();
        // The pod is locked down.
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        // Its only port is the runtime's, named as the Service targets it.
        let port = &c["ports"][0];
        assert_eq!(port["name"], "http");
        let container_port = port["containerPort"].as_u64().unwrap();
        assert_eq!(
            kind(&objs, "Service")["spec"]["ports"][0]["targetPort"],
            "http"
        );
        let args: Vec<String> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert!(
            args.contains(&format!("--addr=0.0.0.0:{container_port}")),
            "{args:?}"
        );
        // Grace: preStop, then --shutdown-grace-seconds, within terminationGracePeriodSeconds.
        let grace: u64 = args
            .iter()
            .find_map(|a| a.strip_prefix("--shutdown-grace-seconds="))
            .unwrap()
            .parse()
            .unwrap();
        let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap();
        assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > pre_stop + grace);

        // The container's file system: ConfigMap and Secret as the kubelet lays them out.
        let fx = Fixture::new();
        let root = fx.path();
        let free = open_cli_product_tests::free_port();
        let rewrite = |s: &str| {
            s.replace("/etc/open-cli", root.join("etc/open-cli").to_str().unwrap())
                .replace(
                    "/var/lib/open-cli",
                    root.join("var/lib/open-cli").to_str().unwrap(),
                )
                .replace("https://idp.example.com", &oidc.issuer)
                .replace("http://127.0.0.1:8080", &api.url)
        };
        let volumes = pod["volumes"].as_array().unwrap();
        for m in c["volumeMounts"].as_array().unwrap() {
            let v = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
            let at = root.join(m["mountPath"].as_str().unwrap().trim_start_matches('/'));
            let data = if let Some(name) = v["configMap"]["name"].as_str() {
                let cm = objs
                    .iter()
                    .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == name)
                    .unwrap();
                cm["data"].as_object().unwrap().clone()
            } else if let Some(name) = v["secret"]["secretName"].as_str() {
                let s = objs
                    .iter()
                    .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == name)
                    .unwrap();
                // The upstream credential the demo API checks.
                s["stringData"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|k| (k.clone(), Value::from("demo-key")))
                    .collect()
            } else {
                std::fs::create_dir_all(&at).unwrap();
                continue;
            };
            match m["subPath"].as_str() {
                Some(key) => {
                    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                    std::fs::write(&at, rewrite(data[key].as_str().unwrap())).unwrap();
                }
                None => {
                    std::fs::create_dir_all(&at).unwrap();
                    project(&at, &data, &rewrite);
                }
            }
        }
        let run_args: Vec<String> = args
            .iter()
            .map(|a| {
                rewrite(a)
                    .replace(
                        &format!("0.0.0.0:{container_port}"),
                        &format!("127.0.0.1:{free}"),
                    )
                    .replace("$(POD_NAME)", "pod-1")
            })
            .collect();
        let mut cmd = Command::new(bin("open-cli-toolbox"));
        isolate(&mut cmd);
        cmd.args(&run_args);
        let mut rt = Proc::spawn("open-cli-toolbox", cmd);
        let base = format!("http://127.0.0.1:{free}");
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(c[probe]["httpGet"]["port"], "http");
            let path = c[probe]["httpGet"]["path"].as_str().unwrap();
            wait_200(&format!("{base}{path}"), Duration::from_secs(30), &rt);
        }
        // Auth is on, with the configured audience; the catalog serves the described API.
        let config: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("etc/open-cli/.cli.json")).unwrap(),
        )
        .unwrap();
        let audience = config["runtime"]["server"]["auth"]["audience"]
            .as_str()
            .unwrap();
        let service = config["services"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        let token = oidc.token(&format!("bundle:{service}"), Some(audience));
        let cat: Value = open_cli_product_tests::http()
            .get(format!("{base}/v1/catalog/effective"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(
            !cat["view"]["tools"].as_array().unwrap().is_empty(),
            "{cat}"
        );
        assert_eq!(
            open_cli_product_tests::http()
                .get(format!("{base}/v1/catalog/effective"))
                .send()
                .unwrap()
                .status(),
            401
        );
        if file.ends_with("sidecar.yaml") {
            // The mounted upstream secret is what the runtime injects.
            let r: Value = open_cli_product_tests::http()
                .post(format!("{base}/v1/tools/execute"))
                .bearer_auth(&token)
                .body(json!({"toolId": "orders:authApiKeyHeader"}).to_string())
                .send()
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(r["statusCode"], 200, "{r}");
        }
        // The ServiceMonitor scrapes the Service's port at /metrics.
        if let Some(sm) = objs.iter().find(|o| o["kind"] == "ServiceMonitor") {
            assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
            assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
            assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
            let metrics = open_cli_product_tests::http()
                .get(format!("{base}/metrics"))
                .bearer_auth(oidc.token("metrics:read", Some(audience)))
                .send()
                .unwrap();
            assert_eq!(metrics.status(), 200);
        }
        rt.signal(libc::SIGTERM);
        let status = rt.wait_exit(Duration::from_secs(grace)).unwrap();
        assert!(status.success(), "{}", rt.logs());
    }
}

/// `deploy/container/build.sh` assembles the image with buildah from this build (no base image
/// to pull): non-root user, the Containerfile's entrypoint, command, port, volumes and health
/// check; and the image runs (`buildah run`, chroot isolation): its command serves, `/readyz`
/// answers on the declared port, and the health check command passes.
#[test]
fn the_container_image_is_assembled_and_runs() {
    let fx = Fixture::new();
    let store = fx.path().join("containers");
    let buildah_args = format!(
        "--storage-driver vfs --root {0}/root --runroot {0}/run",
        store.display()
    );
    let buildah = |args: &[&str]| {
        let mut cmd = Command::new("buildah");
        cmd.args(buildah_args.split_whitespace()).args(args);
        cmd
    };
    let out = Command::new(repo_root().join("deploy/container/build.sh"))
        .arg("localhost/open-cli-toolbox:test")
        .env("BIN_DIR", bin("open-cli-toolbox").parent().unwrap())
        .env("BUILDAH_ARGS", &buildah_args)
        .output()
        .expect("deploy/container/build.sh (scripts/deps installs buildah)");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = buildah(&[
        "inspect",
        "--type",
        "image",
        "localhost/open-cli-toolbox:test",
    ])
    .output()
    .unwrap();
    let image: Value = serde_json::from_slice(&out.stdout).unwrap();
    let config = &image["Docker"]["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], json!(["/open-cli-toolbox"]));
    assert!(
        config["ExposedPorts"]["8765/tcp"].is_object()
            || config["ExposedPorts"]["8765"].is_object(),
        "{config}"
    );
    assert!(
        config["Volumes"]["/var/lib/open-cli"].is_object(),
        "{config}"
    );
    assert!(config["Volumes"]["/etc/open-cli"].is_object(), "{config}");
    let health: Vec<String> = config["Healthcheck"]["Test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(health[0], "CMD", "{health:?}");
    // The Containerfile says the same.
    let containerfile =
        std::fs::read_to_string(repo_root().join("deploy/container/Containerfile")).unwrap();
    assert!(containerfile.contains("USER 65532:65532"));
    assert!(containerfile.contains("EXPOSE 8765"));
    assert!(
        containerfile.contains(&health[1..].join("\", \"")),
        "{health:?}"
    );

    // Run it: the image's own command, on a free port, with a config and a state volume.
    let api = TestApi::start();
    let etc = fx.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("demo.openapi.yaml"), api.spec_yaml()).unwrap();
    std::fs::write(etc.join(".cli.json"), demo_config(json!({})).to_string()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for d in [fx.path(), &etc] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ctr = text(
        &buildah(&["from", "localhost/open-cli-toolbox:test"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    let port = open_cli_product_tests::free_port();
    let cmd_args: Vec<String> = config["Cmd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace("0.0.0.0:8765", &format!("127.0.0.1:{port}"))
        })
        .collect();
    // The config as a volume; the state in the image's own /var/lib/open-cli (owned by the
    // user). (One volume: buildah's chroot isolation loses the first of two bind mounts.)
    let mut run = buildah(&["run", "--isolation", "chroot"]);
    run.arg("-v")
        .arg(format!("{}:/etc/open-cli:ro", etc.display()))
        .arg(&ctr)
        .arg("--")
        .arg("/open-cli-toolbox")
        .args(&cmd_args);
    let guard = ContainerRuntime(port);
    let mut rt = Proc::spawn("buildah run", run);
    wait_200(
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(60),
        &rt,
    );
    let probe: Vec<String> = health[1..]
        .iter()
        .map(|a| a.replace(":8765/", &format!(":{port}/")))
        .collect();
    let out = buildah(&["run", "--isolation", "chroot", &ctr, "--"])
        .args(&probe)
        .output()
        .unwrap();
    assert!(out.status.success(), "health check: {}", text(&out.stderr));
    // Stop the runtime and so the container (the guard does it too if the test fails first).
    let pid = guard
        .pid()
        .unwrap_or_else(|| panic!("no runtime process\n{}", rt.logs()));
    // SAFETY: kill(2) on the runtime this test started in the container; no memory is shared.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    rt.wait_exit(Duration::from_secs(30)).unwrap();
    let _ = buildah(&["rm", &ctr]).output();
}

/// The runtime a container runs on `port`, found by its unique address among the host's
/// processes (chroot isolation shares the PID space). Dropping the guard stops it: killing
/// `buildah run` alone would leave it running when a test fails early.
struct ContainerRuntime(u16);

impl ContainerRuntime {
    fn pid(&self) -> Option<i32> {
        let needle = format!("127.0.0.1:{}", self.0);
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.starts_with("/open-cli-toolbox\0") && c.contains(&needle)
                })
            })
    }
}

impl Drop for ContainerRuntime {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the runtime this test started; no memory is shared.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}
