//! Unit tests for variable precedence, lazy templating and the Ansible filters.

use super::*;
use crate::inventory;
use crate::source::Sources;
use base64::Engine as _;

fn run_vars(inv_text: &str, extra: &[(&str, Value)]) -> Arc<RunVars> {
    let dir = std::env::temp_dir().join(format!("roll-vars-{}-{}", std::process::id(), inv_text.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hosts");
    std::fs::write(&path, inv_text).unwrap();
    let inv = inventory::load(&Sources::new(), &[path.to_str().unwrap().to_string()], &[]).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let extra: VarMap = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    RunVars::new(Arc::new(inv), extra, ".".into())
}

fn play(vars: &[(&str, Value)]) -> Arc<PlayVars> {
    Arc::new(PlayVars {
        vars: Arc::new(vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()),
        play_hosts_all: Value::from(Vec::<Value>::new()),
        play_batch: Value::from(Vec::<Value>::new()),
        check_mode: false,
        ..PlayVars::default()
    })
}

fn render(run: &Arc<RunVars>, p: Arc<PlayVars>, task: &[(&str, Value)], s: &str) -> Result<String, TemplateError> {
    let layer: VarMap = task.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let scope = Scope::value(run.clone(), p, 0, vec![Arc::new(layer)], VarMap::new());
    run.templar.render_string(s, &scope)
}

#[test]
fn precedence_inventory_play_task_facts_extra() {
    let run = run_vars(
        "[app]\nh1 x=host\n[app:vars]\nx=group\ny=group\n",
        &[("z", Value::from("extra"))],
    );
    assert_eq!(render(&run, play(&[]), &[], "{{ x }}{{ y }}").unwrap(), "hostgroup");
    assert_eq!(
        render(&run, play(&[("x", Value::from("play"))]), &[], "{{ x }}").unwrap(),
        "play"
    );
    assert_eq!(
        render(
            &run,
            play(&[("x", Value::from("play"))]),
            &[("x", Value::from("task"))],
            "{{ x }}"
        )
        .unwrap(),
        "task"
    );
    run.set_fact(0, "x", Value::from("fact"));
    assert_eq!(
        render(&run, play(&[]), &[("x", Value::from("task"))], "{{ x }}").unwrap(),
        "fact"
    );
    run.set_fact(0, "z", Value::from("fact"));
    assert_eq!(
        render(&run, play(&[("z", Value::from("play"))]), &[], "{{ z }}").unwrap(),
        "extra"
    );
}

#[test]
fn variables_are_templated_lazily_in_the_host_scope() {
    let run = run_vars("[app]\nh1 port=8080\n", &[]);
    let p = play(&[
        ("url", Value::from("http://{{ inventory_hostname }}:{{ port }}/")),
        ("loop_a", Value::from("{{ loop_b }}")),
        ("loop_b", Value::from("{{ loop_a }}")),
    ]);
    assert_eq!(render(&run, p.clone(), &[], "{{ url }}").unwrap(), "http://h1:8080/");
    let err = render(&run, p, &[], "{{ loop_a }}").unwrap_err();
    assert!(err.message.contains("recursive loop detected"), "{}", err.message);
}

#[test]
fn undefined_variables_are_named_with_a_suggestion() {
    let run = run_vars("[app]\nh1 release=1\n", &[]);
    let err = render(&run, play(&[]), &[], "v{{ relase }}").unwrap_err();
    assert_eq!(err.message, "undefined variable `relase`");
    assert_eq!(err.help.as_deref(), Some("did you mean `release`?"));
    let p = play(&[("colour", Value::from_pairs([("next", "green")]))]);
    let err = render(&run, p, &[], "{{ colour.nxt }}").unwrap_err();
    assert_eq!(err.message, "`colour` has no attribute `nxt`");
    assert_eq!(err.help.as_deref(), Some("did you mean `colour.next`?"));
}

#[test]
fn single_expressions_keep_their_type() {
    let run = run_vars("[app]\nh1\nh2\n", &[]);
    let scope = Scope::value(run.clone(), play(&[]), 0, vec![], VarMap::new());
    let v = run.templar.render("{{ groups['app'] }}", &scope).unwrap();
    assert_eq!(v.len(), Some(2));
    let v = run.templar.render("{{ 40 + 2 }}", &scope).unwrap();
    assert_eq!(v.as_i64(), Some(42));
}

#[test]
fn b64encode_of_a_text_holding_a_secret_is_a_secret() {
    let run = run_vars("[app]\nh1\n", &[]);
    let secrets = run.templar.secrets().clone();
    secrets.add("pw-Kd72-basic-auth");
    let vars = [
        ("user", Value::from("deploy")),
        ("password", Value::from("pw-Kd72-basic-auth")),
    ];
    let header = render(
        &run,
        play(&vars),
        &[],
        "Basic {{ (user ~ ':' ~ password) | b64encode }}",
    )
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(header, format!("Basic {}", b64.encode("deploy:pw-Kd72-basic-auth")));
    // The secret starts 7 bytes in, not on a 3-byte boundary, so its own base64 is not in the
    // header: only the filter's registration of its output masks it.
    assert!(!header.contains(b64.encode("pw-Kd72-basic-auth").trim_end_matches('=')));
    assert_eq!(secrets.mask(&header), format!("Basic {}", crate::secrets::MASK));
    // Encoding text without a secret registers nothing.
    let plain = render(&run, play(&vars), &[], "{{ (user ~ ':public-value') | b64encode }}").unwrap();
    assert_eq!(secrets.mask(&plain), plain);
}

#[test]
fn ansible_filters() {
    let run = run_vars("[app]\nh1\n", &[]);
    let r = |s: &str| render(&run, play(&[("m", Value::from_pairs([("a", 1), ("b", 2)]))]), &[], s).unwrap();
    assert_eq!(r("{{ 'yes' | bool }} {{ 'off' | bool }}"), "True False");
    assert_eq!(
        r("{{ 'web-01' | regex_replace('(\\\\w+)-(\\\\d+)', '\\\\2-\\\\1') }}"),
        "01-web"
    );
    assert_eq!(r("{{ 'abc' | b64encode }} {{ 'YWJj' | b64decode }}"), "YWJj abc");
    assert_eq!(
        r("{{ '/etc/nginx/x.conf' | basename }} {{ '/etc/nginx/x.conf' | dirname }}"),
        "x.conf /etc/nginx"
    );
    assert_eq!(r("{{ m | dict2items | map(attribute='key') | join(',') }}"), "a,b");
    assert_eq!(r("{{ (m | dict2items | items2dict).b }}"), "2");
    assert_eq!(r("{{ m | to_json }}"), r#"{"a": 1, "b": 2}"#);
    assert_eq!(r("{{ ('{\"k\": [1]}' | from_json).k[0] }}"), "1");
    assert_eq!(
        r("{{ undefined_thing | default('d') }} {{ undefined_thing | d('e') }}"),
        "d e"
    );
    assert_eq!(r("{{ [3, 1, 3] | unique | sort | join }}"), "13");
    assert_eq!(r("{{ 'a b' | quote }}"), "'a b'");
    assert_eq!(r("{{ 'x' | regex_search('y') is none }}"), "True");
}

#[test]
fn hostvars_with_templated_variables_do_not_recurse() {
    let run = run_vars("[app]\nh1 port=1\nh2 port=2\n", &[]);
    let p = play(&[("url", Value::from("{{ inventory_hostname }}:{{ port }}"))]);
    let out = render(
        &run,
        p,
        &[],
        "{% for h in groups['app'] %}{{ hostvars[h].url }} {% endfor %}",
    )
    .unwrap();
    assert_eq!(out, "h1:1 h2:2 ");
}

#[test]
fn a_trailing_newline_keeps_a_template_a_string() {
    let run = run_vars("[app]\nh1 release=7\n", &[]);
    let scope = Scope::value(run.clone(), play(&[]), 0, vec![], VarMap::new());
    assert_eq!(
        run.templar.render("{{ release }}\n", &scope).unwrap().as_str(),
        Some("7\n")
    );
}

#[test]
fn a_runaway_template_ends_in_an_error_not_a_hang() {
    let t = Templar::new();
    let scope = Value::from(());
    // 10^10 iterations unbounded (this test would not end); with fuel, an error.
    let e = t
        .render_string(
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
            &scope,
        )
        .unwrap_err();
    assert!(e.message.contains("steps a render may take"), "{e:?}");
    assert!(e.help.as_deref().unwrap_or("").contains("loop inside a loop"), "{e:?}");
    // A large but sane render still works: an upstream of 5,000 backends.
    let upstream = "{% for i in range(5000) %}server 10.0.{{ i // 250 }}.{{ i % 250 }}:8081;\n{% endfor %}";
    assert_eq!(t.render_string(upstream, &scope).unwrap().lines().count(), 5000);
}

#[test]
fn python_string_and_dict_methods_work_as_in_ansible() {
    let run = run_vars("[web]\nweb1 role=Web-App\n", &[]);
    let r = |s: &str| render(&run, play(&[]), &[], s).unwrap();
    assert_eq!(r("{{ role.lower() }}"), "web-app");
    assert_eq!(r("{{ role.split('-') | last }}"), "App");
    assert_eq!(r("{{ role.startswith('Web') }}"), "True");
    assert_eq!(r("{{ {'a': 1}.items() | list | length }}"), "1");
}

#[test]
fn unknown_plugins_names_each_filter_and_test_the_engine_lacks_once_where_first_used() {
    let t = Templar::new();
    let src = "{{ a | upper | nope }} {% if b is odd or b is blue %}{{ b | nope }}{% endif %}";
    let got: Vec<(Plugin, &str)> = t
        .unknown_plugins(src, false)
        .iter()
        .map(|u| (u.kind, &src[u.range.clone()]))
        .collect();
    assert_eq!(got, [(Plugin::Filter, "nope"), (Plugin::Test, "blue")]);
    let expr = "x is local.colors.blue and y | default(1) | int > 0";
    let got = t.unknown_plugins(expr, true);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].kind, &expr[got[0].range.clone()]),
        (Plugin::Test, "local.colors.blue")
    );
    // Filters and tests roll has, Jinja's and its own, are not reported; nor is text that does
    // not compile (its syntax error is reported instead).
    assert!(
        t.unknown_plugins("{{ x | to_json | b64encode }}{{ r is succeeded }}", false)
            .is_empty()
    );
    assert!(t.unknown_plugins("{{ x | nope", false).is_empty());
}

#[test]
fn what_a_host_answered_is_never_rendered_again() {
    let run = run_vars("[app]\nh1 secret=s3cr3t\n", &[]);
    let answer = Value::from_pairs(vec![
        ("stdout", Value::from("{{ secret }}")),
        ("lines", Value::from(vec![Value::from("{% if true %}x{% endif %}")])),
    ]);
    run.set_fact(0, "out", answer);
    run.set_fact(0, "fact", Value::from("{{ secret }}"));
    assert_eq!(
        render(&run, play(&[]), &[], "{{ out.stdout }}").unwrap(),
        "{{ secret }}"
    );
    assert_eq!(
        render(&run, play(&[]), &[], "{{ out.lines[0] }}").unwrap(),
        "{% if true %}x{% endif %}"
    );
    assert_eq!(render(&run, play(&[]), &[], "{{ fact }}").unwrap(), "{{ secret }}");
    // A variable that uses the answer is rendered once, the answer in it not again.
    let task = [("uses", Value::from("got {{ fact }} and {{ secret }}"))];
    assert_eq!(
        render(&run, play(&[]), &task, "{{ uses }}").unwrap(),
        "got {{ secret }} and s3cr3t"
    );
    // `!unsafe` text from a file is never rendered either.
    let unsafe_var = [("raw", crate::yaml::unsafe_text("{{ secret }}"))];
    assert_eq!(
        render(&run, play(&unsafe_var), &[], "{{ raw }}").unwrap(),
        "{{ secret }}"
    );
}

/// Every filter and test issue 14 names for deploy playbooks is in the engine, under its short
/// name and its FQCN.
#[test]
fn the_deploy_vocabulary_is_all_there() {
    let t = Templar::new();
    let filters = [
        "json_query",
        "version_compare",
        "ipaddr",
        "ipv4",
        "ipv6",
        "to_datetime",
        "strftime",
        "hash",
        "checksum",
        "password_hash",
        "regex_escape",
        "mandatory",
        "product",
        "zip",
        "subelements",
        "dictsort",
        "random",
        "shuffle",
        "comment",
        "urlsplit",
        "splitext",
        "realpath",
        "path_join",
        "expanduser",
        "human_to_bytes",
        "human_readable",
        "type_debug",
        "from_yaml_all",
        "combine",
        "extract",
        "community.general.json_query",
        "ansible.utils.ipaddr",
        "ansible.utils.ipv4",
        "ansible.utils.ipv6",
        "ansible.builtin.to_json",
        "ansible.builtin.password_hash",
        "ansible.builtin.combine",
    ];
    let tests = [
        "match",
        "search",
        "regex",
        "in",
        "contains",
        "truthy",
        "falsy",
        "subset",
        "superset",
        "sameas",
        "string",
        "number",
        "mapping",
        "iterable",
        "succeeded",
        "failed",
        "changed",
        "skipped",
        "file",
        "directory",
        "link",
        "exists",
        "abs",
        "version",
        "ansible.builtin.version",
        "ansible.builtin.succeeded",
    ];
    let missing: Vec<&str> = filters
        .iter()
        .filter(|f| !t.has_plugin(Plugin::Filter, f))
        .chain(tests.iter().filter(|x| !t.has_plugin(Plugin::Test, x)))
        .copied()
        .collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
    // A name neither Ansible nor roll has stays unknown under its FQCN too.
    assert!(!t.has_plugin(Plugin::Filter, "ansible.builtin.no_such_filter"));
    assert!(!t.has_plugin(Plugin::Filter, "ansible.builtin.win_splitdrive"));
}

/// roll also takes the collections' filters by their short names (playbooks written for
/// Ansible 2.9 say `ipaddr`), with the FQCN's answers.
#[test]
fn short_names_of_collection_filters_answer_as_their_fqcns() {
    let t = Templar::new();
    let scope = Value::from(());
    for (short, fqcn) in [
        (
            "'10.1.2.3/8' | ipaddr('network')",
            "'10.1.2.3/8' | ansible.utils.ipaddr('network')",
        ),
        ("['::1', '10.0.0.1'] | ipv4", "['::1', '10.0.0.1'] | ansible.utils.ipv4"),
        ("'::1' | ipv6('address')", "'::1' | ansible.utils.ipv6('address')"),
        (
            "{'a': [1, 2]} | json_query('a[1]')",
            "{'a': [1, 2]} | community.general.json_query('a[1]')",
        ),
    ] {
        let a = t.render_string(&format!("{{{{ {short} }}}}"), &scope).unwrap();
        let b = t.render_string(&format!("{{{{ {fqcn} }}}}"), &scope).unwrap();
        assert_eq!(a, b, "{short}");
        assert!(!a.is_empty() && a != "False", "{short} gave {a}");
    }
}
