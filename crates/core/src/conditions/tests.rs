//! Tests for Gatus-style conditions: every row renders as `pass|FAIL <shown>` or
//! `error <condition>: <message>`, compared against expect-test snapshots.

use std::time::Duration;

use expect_test::{Expect, expect};
use proptest::prelude::*;

use super::*;

/// Facts of an HTTP probe that got `status` and `body` in 100 ms.
fn http(status: u16, body: &str) -> Facts {
    Facts {
        status: Some(status),
        response_time: Some(Duration::from_millis(100)),
        body: Some(body.to_string()),
        connected: true,
        ip: Some("127.0.0.1".to_string()),
        ..Facts::default()
    }
}

fn body(text: &str) -> Facts {
    http(200, text)
}

fn render_one(facts: &Facts, condition: &str) -> String {
    match Condition::parse(condition) {
        Ok(parsed) => {
            let evaluation = parsed.evaluate(facts);
            let verdict = if evaluation.ok { "pass" } else { "FAIL" };
            format!("{verdict} {}\n", evaluation.shown)
        }
        Err(error) => format!("error {condition}: {error}\n"),
    }
}

/// Evaluates each condition against `facts`, one line each.
fn check(facts: &Facts, conditions: &[&str], expect: &Expect) {
    let rendered: String = conditions
        .iter()
        .map(|condition| render_one(facts, condition))
        .collect();
    expect.assert_eq(&rendered);
}

/// Gatus's README conditions table: each example with facts that make it hold and facts that
/// make it fail.
#[test]
fn gatus_readme_examples() {
    let cert = |ms: i64| Facts {
        certificate_expiration_ms: Some(ms),
        ..Facts::default()
    };
    let hours = |h: i64| h * 3_600_000;
    let dns = |rcode: &str| Facts {
        dns_rcode: Some(rcode.to_string()),
        ..Facts::default()
    };
    let rows: Vec<(&str, Facts, Facts)> = vec![
        ("[STATUS] == 200", http(200, ""), http(201, "")),
        ("[STATUS] == pat(2*)", http(204, ""), http(404, "")),
        ("[STATUS] < 300", http(299, ""), http(301, "")),
        ("[STATUS] <= 299", http(299, ""), http(300, "")),
        ("[STATUS] > 400", http(401, ""), http(400, "")),
        ("[STATUS] == any(200, 429)", http(429, ""), http(201, "")),
        ("[CONNECTED] == true", http(200, ""), Facts::default()),
        (
            "[RESPONSE_TIME] < 500",
            Facts {
                response_time: Some(Duration::from_millis(300)),
                ..Facts::default()
            },
            Facts {
                response_time: Some(Duration::from_millis(500)),
                ..Facts::default()
            },
        ),
        (
            "[IP] == 127.0.0.1",
            http(200, ""),
            Facts {
                ip: Some("0.0.0.0".to_string()),
                ..Facts::default()
            },
        ),
        ("[BODY] == 1", body("1"), body("{}")),
        (
            "[BODY].user.name == john",
            body(r#"{"user":{"name":"john"}}"#),
            body(r#"{"user":{"name":"jane"}}"#),
        ),
        (
            "[BODY].data[0].id == 1",
            body(r#"{"data":[{"id":1}]}"#),
            body(r#"{"data":[{"id":2}]}"#),
        ),
        (
            "[BODY].age == [BODY].id",
            body(r#"{"age":1,"id":1}"#),
            body(r#"{"age":30,"id":1}"#),
        ),
        (
            "len([BODY].data) < 5",
            body(r#"{"data":[{"id":1}]}"#),
            body(r#"{"data":[1,2,3,4,5]}"#),
        ),
        (
            "len([BODY].name) == 8",
            body(r#"{"name":"john.doe"}"#),
            body(r#"{"name":"bob"}"#),
        ),
        (
            "has([BODY].errors) == false",
            body(r#"{"name":"john.doe"}"#),
            body(r#"{"errors":[]}"#),
        ),
        (
            "has([BODY].users) == true",
            body(r#"{"users":[]}"#),
            body("{}"),
        ),
        (
            "[BODY].name == pat(john*)",
            body(r#"{"name":"john.doe"}"#),
            body(r#"{"name":"bob"}"#),
        ),
        (
            "[BODY].id == any(1, 2)",
            body(r#"{"id":2}"#),
            body(r#"{"id":3}"#),
        ),
        (
            "[CERTIFICATE_EXPIRATION] > 48h",
            cert(hours(49)),
            cert(hours(24)),
        ),
        ("[DNS_RCODE] == NOERROR", dns("NOERROR"), dns("NXDOMAIN")),
    ];
    let mut rendered = String::new();
    for (condition, passing, failing) in &rows {
        rendered.push_str(&render_one(passing, condition));
        rendered.push_str(&render_one(failing, condition));
    }
    expect![[r#"
        pass [STATUS] (200) == 200
        FAIL [STATUS] (201) == 200
        pass [STATUS] (204) == pat(2*)
        FAIL [STATUS] (404) == pat(2*)
        pass [STATUS] (299) < 300
        FAIL [STATUS] (301) < 300
        pass [STATUS] (299) <= 299
        FAIL [STATUS] (300) <= 299
        pass [STATUS] (401) > 400
        FAIL [STATUS] (400) > 400
        pass [STATUS] (429) == any(200, 429)
        FAIL [STATUS] (201) == any(200, 429)
        pass [CONNECTED] (true) == true
        FAIL [CONNECTED] (false) == true
        pass [RESPONSE_TIME] (300) < 500
        FAIL [RESPONSE_TIME] (500) < 500
        pass [IP] (127.0.0.1) == 127.0.0.1
        FAIL [IP] (0.0.0.0) == 127.0.0.1
        pass [BODY] (1) == 1
        FAIL [BODY] ({}) == 1
        pass [BODY].user.name (john) == john
        FAIL [BODY].user.name (jane) == john
        pass [BODY].data[0].id (1) == 1
        FAIL [BODY].data[0].id (2) == 1
        pass [BODY].age (1) == [BODY].id (1)
        FAIL [BODY].age (30) == [BODY].id (1)
        pass len([BODY].data) (1) < 5
        FAIL len([BODY].data) (5) < 5
        pass len([BODY].name) (8) == 8
        FAIL len([BODY].name) (3) == 8
        pass has([BODY].errors) (false) == false
        FAIL has([BODY].errors) (true) == false
        pass has([BODY].users) (true) == true
        FAIL has([BODY].users) (false) == true
        pass [BODY].name (john.doe) == pat(john*)
        FAIL [BODY].name (bob) == pat(john*)
        pass [BODY].id (2) == any(1, 2)
        FAIL [BODY].id (3) == any(1, 2)
        pass [CERTIFICATE_EXPIRATION] (49h) > 48h
        FAIL [CERTIFICATE_EXPIRATION] (24h) > 48h
        pass [DNS_RCODE] (NOERROR) == NOERROR
        FAIL [DNS_RCODE] (NXDOMAIN) == NOERROR
    "#]]
    .assert_eq(&rendered);
}

#[test]
fn placeholders() {
    let facts = Facts {
        status: Some(503),
        response_time: Some(Duration::from_micros(812_999)),
        body: Some("down for maintenance".to_string()),
        connected: false,
        ip: Some("10.0.0.7".to_string()),
        dns_rcode: Some("SERVFAIL".to_string()),
        certificate_expiration_ms: Some(90_061_000),
    };
    check(
        &facts,
        &[
            "[STATUS] == 200",
            "[RESPONSE_TIME] < 500",
            "[BODY] == ok",
            "[CONNECTED] == true",
            "[IP] == 127.0.0.1",
            "[DNS_RCODE] == NOERROR",
            "[CERTIFICATE_EXPIRATION] > 48h",
            // Placeholder names are case-insensitive, as in Gatus.
            "[status] == 200",
            "[Body] == ok",
            // Literals on the left, placeholders on the right.
            "200 == [STATUS]",
            "200 == 200",
        ],
        &expect![[r#"
            FAIL [STATUS] (503) == 200
            FAIL [RESPONSE_TIME] (812) < 500
            FAIL [BODY] (down for maintenance) == ok
            FAIL [CONNECTED] (false) == true
            FAIL [IP] (10.0.0.7) == 127.0.0.1
            FAIL [DNS_RCODE] (SERVFAIL) == NOERROR
            FAIL [CERTIFICATE_EXPIRATION] (25h1m1s) > 48h
            FAIL [status] (503) == 200
            FAIL [Body] (down for maintenance) == ok
            FAIL 200 == [STATUS] (503)
            pass 200 == 200
        "#]],
    );
}

/// Gatus resolves unset facts to zero values: status 0, response time 0, empty texts.
#[test]
fn unset_facts() {
    check(
        &Facts::default(),
        &[
            "[STATUS] == 0",
            "[STATUS] == 200",
            "[RESPONSE_TIME] == 0",
            "[BODY] == ok",
            "[CONNECTED] == false",
            "[IP] == 127.0.0.1",
            "[DNS_RCODE] == NOERROR",
            "[CERTIFICATE_EXPIRATION] > 1h",
            "[BODY].status == UP",
            "len([BODY]) == 0",
            "has([BODY]) == false",
            "has([IP]) == false",
        ],
        &expect![[r#"
            pass [STATUS] (0) == 0
            FAIL [STATUS] (0) == 200
            pass [RESPONSE_TIME] (0) == 0
            FAIL [BODY] () == ok
            pass [CONNECTED] (false) == false
            FAIL [IP] () == 127.0.0.1
            FAIL [DNS_RCODE] () == NOERROR
            FAIL [CERTIFICATE_EXPIRATION] (0s) > 1h
            FAIL [BODY].status (no body) == UP
            pass len([BODY]) (0) == 0
            pass has([BODY]) (false) == false
            pass has([IP]) (false) == false
        "#]],
    );
}

#[test]
fn operators() {
    let facts = http(200, "");
    check(
        &facts,
        &[
            "[STATUS] == 200",
            "[STATUS] == 201",
            "[STATUS] != 200",
            "[STATUS] != 201",
            "[STATUS] < 200",
            "[STATUS] < 201",
            "[STATUS] <= 199",
            "[STATUS] <= 200",
            "[STATUS] > 200",
            "[STATUS] > 199",
            "[STATUS] >= 201",
            "[STATUS] >= 200",
            // Extra spaces around the operator are fine, as in Gatus.
            "[STATUS]   ==   200",
            "  [STATUS] == 200  ",
            // `==` is looked for first, so the rest is one literal.
            "[BODY] == a < b",
        ],
        &expect![[r#"
            pass [STATUS] (200) == 200
            FAIL [STATUS] (200) == 201
            FAIL [STATUS] (200) != 200
            pass [STATUS] (200) != 201
            FAIL [STATUS] (200) < 200
            pass [STATUS] (200) < 201
            FAIL [STATUS] (200) <= 199
            pass [STATUS] (200) <= 200
            FAIL [STATUS] (200) > 200
            pass [STATUS] (200) > 199
            FAIL [STATUS] (200) >= 201
            pass [STATUS] (200) >= 200
            pass [STATUS] (200) == 200
            pass [STATUS] (200) == 200
            FAIL [BODY] () == a < b
        "#]],
    );
}

#[test]
fn numeric_and_string_comparison() {
    let facts = body(
        r#"{"int":200,"float":1.5,"whole_float":2.0,"text":"200","padded":" 200","word":"up","version":"1.10","big":12345678901234567890,"negative":-3,"tiny":0.25}"#,
    );
    check(
        &facts,
        &[
            // `==` compares integers when both sides are Go integers, else text.
            "[BODY].int == 200",
            "[BODY].text == 200",
            "[BODY].int == 0xC8",
            "[BODY].int == 0310",
            "[BODY].int == 2_00",
            "[BODY].int == +200",
            "[BODY].padded == 200",
            "[BODY].word == up",
            "[BODY].word == UP",
            "[BODY].version == 1.1",
            "[BODY].version == 1.10",
            "[BODY].whole_float == 2",
            "[BODY].float == 1.5",
            "[BODY].float == 1.50",
            "[BODY].big == 12345678901234567890",
            // Ordering compares numbers, floats included.
            "[BODY].float > 1",
            "[BODY].float < 1.6",
            "[BODY].tiny > 0",
            "[BODY].negative < 0",
            "[BODY].negative >= -3",
            "[BODY].big > 1",
            "[BODY].text >= 200",
            "[BODY].int < 1e3",
            // Observed text that is no number counts as 0, as in Gatus.
            "[BODY].word < 1",
            "[BODY].word > 0",
            "[BODY].word >= 0",
        ],
        &expect![[r#"
            pass [BODY].int (200) == 200
            pass [BODY].text (200) == 200
            pass [BODY].int (200) == 0xC8
            pass [BODY].int (200) == 0310
            pass [BODY].int (200) == 2_00
            pass [BODY].int (200) == +200
            FAIL [BODY].padded ( 200) == 200
            pass [BODY].word (up) == up
            FAIL [BODY].word (up) == UP
            FAIL [BODY].version (1.10) == 1.1
            pass [BODY].version (1.10) == 1.10
            pass [BODY].whole_float (2) == 2
            pass [BODY].float (1.5) == 1.5
            FAIL [BODY].float (1.5) == 1.50
            pass [BODY].big (12345678901234567890) == 12345678901234567890
            pass [BODY].float (1.5) > 1
            pass [BODY].float (1.5) < 1.6
            pass [BODY].tiny (0.25) > 0
            pass [BODY].negative (-3) < 0
            pass [BODY].negative (-3) >= -3
            pass [BODY].big (12345678901234567890) > 1
            pass [BODY].text (200) >= 200
            pass [BODY].int (200) < 1e3
            pass [BODY].word (up) < 1
            FAIL [BODY].word (up) > 0
            pass [BODY].word (up) >= 0
        "#]],
    );
}

#[test]
fn json_paths() {
    let facts = body(
        r#"{
            "status": "UP",
            "data": [{"id": 1, "tags": ["a", "b"]}, {"id": 2, "matrix": [[1, 2], [3, 4]]}],
            "user": {"name": "john", "address": {"city": "Paris"}},
            "flag": true,
            "nothing": null,
            "empty": {},
            "with-dash": 5,
            "with space": 6,
            "Case": "upper"
        }"#,
    );
    check(
        &facts,
        &[
            "[BODY].status == UP",
            "[BODY].status == DOWN",
            "[BODY].data[0].id == 1",
            "[BODY].data[1].id == 1",
            "[BODY].data[0].tags[1] == b",
            "[BODY].data[1].matrix[1][0] == 3",
            "[BODY].user.name == john",
            "[BODY].user.address.city == Paris",
            "[BODY].flag == true",
            "[BODY].nothing == null",
            "[BODY].empty == {}",
            "[BODY].user == x",
            "[BODY].data[0].tags == x",
            "[BODY].with-dash == 5",
            "[BODY].with space == 6",
            "[BODY].Case == upper",
            "[BODY].case == upper",
            // Missing paths fail whatever the operator, and say so.
            "[BODY].missing == UP",
            "[BODY].missing != UP",
            "[BODY].missing < 5",
            "[BODY].data[5].id == 1",
            "[BODY].status.inner == x",
            "[BODY].data.id == 1",
            "[BODY][0] == 1",
            "[BODY].user[0] == 1",
        ],
        &expect![[r#"
            pass [BODY].status (UP) == UP
            FAIL [BODY].status (UP) == DOWN
            pass [BODY].data[0].id (1) == 1
            FAIL [BODY].data[1].id (2) == 1
            pass [BODY].data[0].tags[1] (b) == b
            pass [BODY].data[1].matrix[1][0] (3) == 3
            pass [BODY].user.name (john) == john
            pass [BODY].user.address.city (Paris) == Paris
            pass [BODY].flag (true) == true
            pass [BODY].nothing (null) == null
            pass [BODY].empty ({}) == {}
            FAIL [BODY].user ({"address":{"city":"Paris"},"name":"john"}) == x
            FAIL [BODY].data[0].tags (["a","b"]) == x
            pass [BODY].with-dash (5) == 5
            pass [BODY].with space (6) == 6
            pass [BODY].Case (upper) == upper
            FAIL [BODY].case (missing) == upper
            FAIL [BODY].missing (missing) == UP
            FAIL [BODY].missing (missing) != UP
            FAIL [BODY].missing (missing) < 5
            FAIL [BODY].data[5].id (missing) == 1
            FAIL [BODY].status.inner (missing) == x
            FAIL [BODY].data.id (missing) == 1
            FAIL [BODY][0] (missing) == 1
            FAIL [BODY].user[0] (missing) == 1
        "#]],
    );
}

#[test]
fn json_paths_on_array_and_odd_bodies() {
    check(
        &body(r#"[{"id": 7}, [10, 20]]"#),
        &[
            "[BODY][0].id == 7",
            "[BODY][1][1] == 20",
            "[BODY][2] == 1",
            "[BODY].id == 7",
            "len([BODY]) == 2",
        ],
        &expect![[r#"
            pass [BODY][0].id (7) == 7
            pass [BODY][1][1] (20) == 20
            FAIL [BODY][2] (missing) == 1
            FAIL [BODY].id (missing) == 7
            pass len([BODY]) (2) == 2
        "#]],
    );
    check(
        &body("<html>down</html>"),
        &[
            "[BODY] == <html>down</html>",
            "[BODY].status == UP",
            "has([BODY].status) == false",
            "len([BODY]) == 17",
        ],
        &expect![[r#"
            pass [BODY] (<html>down</html>) == <html>down</html>
            FAIL [BODY].status (body is not JSON) == UP
            pass has([BODY].status) (false) == false
            pass len([BODY]) (17) == 17
        "#]],
    );
    check(
        &body("  \n "),
        &["[BODY] == ", "[BODY].status == UP", "has([BODY]) == false"],
        &expect![[r#"
            error [BODY] == : missing right-hand side after `==` (column 8)
            FAIL [BODY].status (no body) == UP
            pass has([BODY]) (false) == false
        "#]],
    );
    check(
        &body("\"just a string\""),
        &["[BODY].x == 1", "[BODY] == \"just a string\""],
        &expect![[r#"
            FAIL [BODY].x (missing) == 1
            pass [BODY] ("just a string") == "just a string"
        "#]],
    );
}

#[test]
fn functions_len_and_has() {
    let facts = body(
        r#"{"data":[1,2,3],"none":[],"name":"john.doe","accent":"Zoë","age":18,"adult":true,"obj":{"b":2,"a":1},"nothing":null}"#,
    );
    check(
        &facts,
        &[
            "len([BODY].data) == 3",
            "len([BODY].none) > 0",
            "len([BODY].name) == 8",
            "len([BODY].accent) == 3",
            "len([BODY].age) == 2",
            "len([BODY].adult) == 4",
            // Objects count as their minified JSON text (Gatus's documented behaviour).
            "len([BODY].obj) == 13",
            "len([BODY].nothing) == 0",
            "len([BODY].missing) == 0",
            "len([BODY]) > 10",
            "len([STATUS]) == 3",
            "len([IP]) == 9",
            "has([BODY].data) == true",
            "has([BODY].none) == true",
            "has([BODY].missing) == true",
            "has([BODY].nothing) == true",
            "has([BODY].data[2]) == true",
            "has([BODY].data[3]) == true",
            "has([BODY]) == true",
            "has([DNS_RCODE]) == true",
            "has([STATUS]) == true",
        ],
        &expect![[r#"
            pass len([BODY].data) (3) == 3
            FAIL len([BODY].none) (0) > 0
            pass len([BODY].name) (8) == 8
            pass len([BODY].accent) (3) == 3
            pass len([BODY].age) (2) == 2
            pass len([BODY].adult) (4) == 4
            pass len([BODY].obj) (13) == 13
            FAIL len([BODY].nothing) (null) == 0
            FAIL len([BODY].missing) (missing) == 0
            pass len([BODY]) (116) > 10
            pass len([STATUS]) (3) == 3
            pass len([IP]) (9) == 9
            pass has([BODY].data) (true) == true
            pass has([BODY].none) (true) == true
            FAIL has([BODY].missing) (false) == true
            FAIL has([BODY].nothing) (false) == true
            pass has([BODY].data[2]) (true) == true
            FAIL has([BODY].data[3]) (false) == true
            pass has([BODY]) (true) == true
            FAIL has([DNS_RCODE]) (false) == true
            pass has([STATUS]) (true) == true
        "#]],
    );
}

#[test]
fn functions_pat_and_any() {
    let facts = Facts {
        ip: Some("192.168.1.20".to_string()),
        body: Some(
            r#"{"name":"john.doe","url":"https://example.com/health","id":2,"long":"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"}"#
                .to_string(),
        ),
        status: Some(204),
        ..Facts::default()
    };
    check(
        &facts,
        &[
            "[STATUS] == pat(2*)",
            "[STATUS] == pat(3*)",
            "[STATUS] != pat(5*)",
            "[STATUS] != pat(2*)",
            "[STATUS] == pat(2?4)",
            "[STATUS] == pat(2?)",
            "[STATUS] == pat(20[0-4])",
            "[STATUS] == pat(20[^0-4])",
            "[IP] == pat(192.168.*)",
            "[IP] == pat(192.168.*.*)",
            "[IP] == pat(10.*)",
            "[BODY].name == pat(john*)",
            "[BODY].name == pat(*doe)",
            "[BODY].name == pat(*)",
            "[BODY].name == pat(j\\*)",
            "[BODY].url == pat(https://*/health)",
            "[BODY].url == pat(*example.com*)",
            "pat(john*) == [BODY].name",
            "[BODY].long == pat(x*)",
            "[BODY].missing == pat(*)",
            "[BODY].id == any(1, 2)",
            "[BODY].id == any(3, 4)",
            "[BODY].id != any(3, 4)",
            "[BODY].id == any(02, 5)",
            "[BODY].name == any(jane, john.doe)",
            "any(204, 200) == [STATUS]",
            "[IP] == any(127.0.0.1, ::1)",
        ],
        &expect![[r#"
            pass [STATUS] (204) == pat(2*)
            FAIL [STATUS] (204) == pat(3*)
            pass [STATUS] (204) != pat(5*)
            FAIL [STATUS] (204) != pat(2*)
            pass [STATUS] (204) == pat(2?4)
            FAIL [STATUS] (204) == pat(2?)
            pass [STATUS] (204) == pat(20[0-4])
            FAIL [STATUS] (204) == pat(20[^0-4])
            pass [IP] (192.168.1.20) == pat(192.168.*)
            pass [IP] (192.168.1.20) == pat(192.168.*.*)
            FAIL [IP] (192.168.1.20) == pat(10.*)
            pass [BODY].name (john.doe) == pat(john*)
            pass [BODY].name (john.doe) == pat(*doe)
            pass [BODY].name (john.doe) == pat(*)
            FAIL [BODY].name (john.doe) == pat(j\*)
            pass [BODY].url (https://example.com/health) == pat(https://*/health)
            pass [BODY].url (https://example.com/health) == pat(*example.com*)
            pass pat(john*) == [BODY].name (john.doe)
            FAIL [BODY].long (abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefgh…) == pat(x*)
            FAIL [BODY].missing (missing) == pat(*)
            pass [BODY].id (2) == any(1, 2)
            FAIL [BODY].id (2) == any(3, 4)
            pass [BODY].id (2) != any(3, 4)
            pass [BODY].id (2) == any(02, 5)
            pass [BODY].name (john.doe) == any(jane, john.doe)
            pass any(204, 200) == [STATUS] (204)
            FAIL [IP] (192.168.1.20) == any(127.0.0.1, ::1)
        "#]],
    );
}

#[test]
fn durations() {
    let cert = |ms: i64| Facts {
        certificate_expiration_ms: Some(ms),
        ..Facts::default()
    };
    check(
        &cert(49 * 3_600_000),
        &[
            "[CERTIFICATE_EXPIRATION] > 48h",
            "[CERTIFICATE_EXPIRATION] > 2880m",
            "[CERTIFICATE_EXPIRATION] > 1h30m",
            "[CERTIFICATE_EXPIRATION] > 48.5h",
            "[CERTIFICATE_EXPIRATION] > 49.5h",
            "[CERTIFICATE_EXPIRATION] >= 176400s",
            "[CERTIFICATE_EXPIRATION] > 176400001",
            "[CERTIFICATE_EXPIRATION] < 168h",
            "[CERTIFICATE_EXPIRATION] > 168h",
        ],
        &expect![[r#"
            pass [CERTIFICATE_EXPIRATION] (49h) > 48h
            pass [CERTIFICATE_EXPIRATION] (49h) > 2880m
            pass [CERTIFICATE_EXPIRATION] (49h) > 1h30m
            pass [CERTIFICATE_EXPIRATION] (49h) > 48.5h
            FAIL [CERTIFICATE_EXPIRATION] (49h) > 49.5h
            pass [CERTIFICATE_EXPIRATION] (49h) >= 176400s
            FAIL [CERTIFICATE_EXPIRATION] (49h) > 176400001
            pass [CERTIFICATE_EXPIRATION] (49h) < 168h
            FAIL [CERTIFICATE_EXPIRATION] (49h) > 168h
        "#]],
    );
    check(
        &cert(3_615_500),
        &[
            "[CERTIFICATE_EXPIRATION] > 2h",
            "[CERTIFICATE_EXPIRATION] == 3615500",
        ],
        &expect![[r#"
            FAIL [CERTIFICATE_EXPIRATION] (1h0m15s) > 2h
            pass [CERTIFICATE_EXPIRATION] (1h0m15s) == 3615500
        "#]],
    );
    check(
        &cert(-2 * 86_400_000),
        &[
            "[CERTIFICATE_EXPIRATION] > 0",
            "[CERTIFICATE_EXPIRATION] > -72h",
        ],
        &expect![[r#"
            FAIL [CERTIFICATE_EXPIRATION] (-48h) > 0
            pass [CERTIFICATE_EXPIRATION] (-48h) > -72h
        "#]],
    );
    check(
        &Facts {
            response_time: Some(Duration::from_millis(812)),
            body: Some(r#"{"uptime":"2h","lag":"1.5s"}"#.to_string()),
            ..Facts::default()
        },
        &[
            "[RESPONSE_TIME] < 500",
            "[RESPONSE_TIME] < 1s",
            "[RESPONSE_TIME] < 800ms",
            "[RESPONSE_TIME] > 0.5s",
            "[BODY].uptime > 1h",
            "[BODY].lag < 1s",
        ],
        &expect![[r#"
            FAIL [RESPONSE_TIME] (812) < 500
            pass [RESPONSE_TIME] (812) < 1s
            FAIL [RESPONSE_TIME] (812) < 800ms
            pass [RESPONSE_TIME] (812) > 0.5s
            pass [BODY].uptime (2h) > 1h
            FAIL [BODY].lag (1.5s) < 1s
        "#]],
    );
}

#[test]
fn shown_values_are_short_single_lines() {
    let long = "x".repeat(100);
    check(
        &Facts {
            body: Some(long),
            ip: Some(String::new()),
            ..Facts::default()
        },
        &["[BODY] == short", "[IP] == 127.0.0.1", "len([BODY]) < 10"],
        &expect![[r#"
            FAIL [BODY] (xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…) == short
            FAIL [IP] () == 127.0.0.1
            FAIL len([BODY]) (100) < 10
        "#]],
    );
    check(
        &body("line one\nline two\ttabbed"),
        &["[BODY] == ok"],
        &expect![[r#"
            FAIL [BODY] (line one\nline two\ttabbed) == ok
        "#]],
    );
    check(
        &body(
            r#"{"data":{"items":[1,2,3],"more":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#,
        ),
        &["[BODY].data == x"],
        &expect![[r#"
            FAIL [BODY].data ({"items":[1,2,3],"more":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…) == x
        "#]],
    );
}

#[test]
fn parse_errors() {
    let conditions = [
        "",
        "   ",
        "[STATUS]",
        "[STATUS]==200",
        "[STATUS] =200",
        "[STATUS] 200",
        "[STATUS] == ",
        "[STATUS] ==",
        "== 200",
        " < 5",
        "[STATU] == 200",
        "[status_code] == 200",
        "[STATUS] == [OK]",
        "[DOMAIN_EXPIRATION] > 720h",
        "[CONTEXT].user == 1",
        "[STATUS == 200",
        "[BODY].data[0 == 1",
        "[BODY].data] == 1",
        "[BODY].data[x] == 1",
        "[BODY].data[-1] == 1",
        "[BODY]..name == 1",
        "[BODY]. == 1",
        "[BODY]name == 1",
        "[STATUS].code == 200",
        "[STATUS]x == 200",
        "len([BODY].data > 0",
        "len([BODY].data) > 0)",
        "len([BODY].data)) > 0",
        "(len([BODY].data) > 0",
        "len([BODY].data) x > 0",
        "len() > 0",
        "len(abc) > 0",
        "len(len([BODY])) > 0",
        "has([BODY].x == true",
        "[BODY] == pat(2*",
        "[BODY] == any(1, 2",
        "[BODY] == any()",
        "[BODY] == pat([a)",
        "[BODY] == pat([]a])",
        "[BODY] == pat(a\\)",
        "pat(a*) == any(1)",
        "[STATUS] < pat(2*)",
        "any(1, 2) >= [STATUS]",
        "[CERTIFICATE_EXPIRATION] > 7d",
        "[CERTIFICATE_EXPIRATION] > soon",
        "[STATUS] < 3OO",
        "[STATUS] == 200 == 201",
        "[BODY] == a)",
        "[BODY] == (a",
        "[BODY] == ]",
        "é == [STATU]",
    ];
    let rendered: String = conditions
        .iter()
        .map(|condition| match Condition::parse(condition) {
            Ok(parsed) => format!("ok    {condition:?}: {parsed:?}\n"),
            Err(error) => format!("{condition:?} -> {error}\n"),
        })
        .collect();
    expect![[r#"
        "" -> empty condition
        "   " -> empty condition
        "[STATUS]" -> missing operator: expected `==`, `!=`, `<`, `<=`, `>` or `>=` with a space on each side
        "[STATUS]==200" -> operator `==` needs a space on each side (column 9)
        "[STATUS] =200" -> missing operator: expected `==`, `!=`, `<`, `<=`, `>` or `>=` with a space on each side
        "[STATUS] 200" -> missing operator: expected `==`, `!=`, `<`, `<=`, `>` or `>=` with a space on each side
        "[STATUS] == " -> missing right-hand side after `==` (column 10)
        "[STATUS] ==" -> missing right-hand side after `==` (column 10)
        "== 200" -> missing left-hand side before `==` (column 1)
        " < 5" -> missing left-hand side before `<` (column 2)
        "[STATU] == 200" -> unknown placeholder `[STATU]` (column 1)
        "[status_code] == 200" -> unknown placeholder `[status_code]` (column 1)
        "[STATUS] == [OK]" -> unknown placeholder `[OK]` (column 13)
        "[DOMAIN_EXPIRATION] > 720h" -> [DOMAIN_EXPIRATION] is not supported (column 1)
        "[CONTEXT].user == 1" -> [CONTEXT] is not supported (it only exists in Gatus suites) (column 1)
        "[STATUS == 200" -> unclosed `[` (column 1)
        "[BODY].data[0 == 1" -> unclosed `[` in JSON path (column 12)
        "[BODY].data] == 1" -> unexpected `]` in JSON path (column 12)
        "[BODY].data[x] == 1" -> invalid array index `x`: expected a number such as `0` (column 13)
        "[BODY].data[-1] == 1" -> invalid array index `-1`: expected a number such as `0` (column 13)
        "[BODY]..name == 1" -> empty key in JSON path (column 7)
        "[BODY]. == 1" -> empty key in JSON path (column 7)
        "[BODY]name == 1" -> unexpected `name` after `[BODY]`: path segments start with `.` or `[` (column 7)
        "[STATUS].code == 200" -> unexpected `.code` after `[STATUS]` (only [BODY] takes a JSON path) (column 9)
        "[STATUS]x == 200" -> unexpected `x` after `[STATUS]` (only [BODY] takes a JSON path) (column 9)
        "len([BODY].data > 0" -> unclosed `(` after `len` (column 4)
        "len([BODY].data) > 0)" -> unbalanced `)` (column 21)
        "len([BODY].data)) > 0" -> unexpected `)` after `len(...)` (column 17)
        "(len([BODY].data) > 0" -> unclosed `(` (column 1)
        "len([BODY].data) x > 0" -> unexpected `x` after `len(...)` (column 18)
        "len() > 0" -> `len()` needs a placeholder, e.g. `len([BODY].data)` (column 1)
        "len(abc) > 0" -> `len()` takes a placeholder, e.g. `len([BODY].data)`, not `abc` (column 5)
        "len(len([BODY])) > 0" -> `len()` takes a placeholder, e.g. `len([BODY].data)`, not `len([BODY])` (column 5)
        "has([BODY].x == true" -> unclosed `(` after `has` (column 4)
        "[BODY] == pat(2*" -> unclosed `(` after `pat` (column 14)
        "[BODY] == any(1, 2" -> unclosed `(` after `any` (column 14)
        "[BODY] == any()" -> `any()` needs at least one value (column 11)
        "[BODY] == pat([a)" -> invalid pattern in `pat()`: unclosed `[` (column 11)
        "[BODY] == pat([]a])" -> invalid pattern in `pat()`: `]` must be escaped inside `[...]` (column 11)
        "[BODY] == pat(a\\)" -> invalid pattern in `pat()`: trailing `\` (column 11)
        "pat(a*) == any(1)" -> `any()` can only be used on one side of a comparison (column 12)
        "[STATUS] < pat(2*)" -> `pat()` only works with `==` and `!=`, not `<` (column 12)
        "any(1, 2) >= [STATUS]" -> `any()` only works with `==` and `!=`, not `>=` (column 1)
        "[CERTIFICATE_EXPIRATION] > 7d" -> `7d` is not a valid duration: Go durations have no days, write `168h` (column 28)
        "[CERTIFICATE_EXPIRATION] > soon" -> `soon` next to `>` must be a number or a duration such as `500`, `48h` or `1h30m` (column 28)
        "[STATUS] < 3OO" -> `3OO` next to `<` must be a number or a duration such as `500`, `48h` or `1h30m` (column 12)
        "[STATUS] == 200 == 201" -> more than one `==` in the condition (column 17)
        "[BODY] == a)" -> unbalanced `)` (column 12)
        "[BODY] == (a" -> unclosed `(` (column 11)
        "[BODY] == ]" -> unbalanced `]` (column 11)
        "é == [STATU]" -> unknown placeholder `[STATU]` (column 6)
    "#]]
    .assert_eq(&rendered);
}

#[test]
fn error_fields() {
    let error = Condition::parse("[STATUS] == [STATU]").unwrap_err();
    assert_eq!(
        error,
        ConditionError {
            message: "unknown placeholder `[STATU]`".to_string(),
            column: 13
        }
    );
    assert_eq!(
        error.to_string(),
        "unknown placeholder `[STATU]` (column 13)"
    );
    let error = Condition::parse("[STATUS]").unwrap_err();
    assert_eq!(error.column, 0);
    let error = Condition::parse("[DOMAIN_EXPIRATION] > 720h").unwrap_err();
    assert_eq!(error.message, "[DOMAIN_EXPIRATION] is not supported");
}

#[test]
fn literals_that_look_like_brackets() {
    check(
        &body("[]"),
        &[
            "[BODY] == []",
            "[BODY] == [1,2]",
            "[BODY] == (ok)",
            "[BODY] != [:1]",
        ],
        &expect![[r#"
            pass [BODY] ([]) == []
            FAIL [BODY] ([]) == [1,2]
            FAIL [BODY] ([]) == (ok)
            pass [BODY] ([]) != [:1]
        "#]],
    );
}

#[test]
fn uses_and_text() {
    let condition = Condition::parse("len([BODY].data) > [STATUS]").unwrap();
    assert_eq!(condition.text(), "len([BODY].data) > [STATUS]");
    assert_eq!(condition.to_string(), "len([BODY].data) > [STATUS]");
    let all = [
        Placeholder::Status,
        Placeholder::ResponseTime,
        Placeholder::Body,
        Placeholder::Connected,
        Placeholder::Ip,
        Placeholder::DnsRcode,
        Placeholder::CertificateExpiration,
    ];
    let render = |text: &str| {
        let condition = Condition::parse(text).unwrap();
        let used: Vec<String> = all
            .iter()
            .filter(|placeholder| condition.uses(**placeholder))
            .map(|placeholder| placeholder.to_string())
            .collect();
        let used = if used.is_empty() {
            "none".to_string()
        } else {
            used.join(" ")
        };
        format!("{text}: {used}\n")
    };
    let rendered: String = [
        "len([BODY].data) > [STATUS]",
        "[CONNECTED] == true",
        "has([IP]) == true",
        "[RESPONSE_TIME] < 5",
        "[DNS_RCODE] == NOERROR",
        "[CERTIFICATE_EXPIRATION] > 1h",
        "1 == 1",
        "[BODY] == pat(*[CONNECTED]*)",
    ]
    .into_iter()
    .map(render)
    .collect();
    expect![[r#"
        len([BODY].data) > [STATUS]: [STATUS] [BODY]
        [CONNECTED] == true: [CONNECTED]
        has([IP]) == true: [IP]
        [RESPONSE_TIME] < 5: [RESPONSE_TIME]
        [DNS_RCODE] == NOERROR: [DNS_RCODE]
        [CERTIFICATE_EXPIRATION] > 1h: [CERTIFICATE_EXPIRATION]
        1 == 1: none
        [BODY] == pat(*[CONNECTED]*): [BODY]
    "#]]
    .assert_eq(&rendered);
}

#[test]
fn evaluate_all_returns_failures_in_order() {
    let conditions: Vec<Condition> = [
        "[STATUS] == 200",
        "[BODY].status == UP",
        "[RESPONSE_TIME] < 500",
        "len([BODY].data) > 0",
        "[CONNECTED] == true",
    ]
    .iter()
    .map(|text| Condition::parse(text).unwrap())
    .collect();
    let failing = Facts {
        status: Some(503),
        response_time: Some(Duration::from_millis(812)),
        body: Some(r#"{"status":"DOWN","data":[]}"#.to_string()),
        connected: true,
        ..Facts::default()
    };
    expect![[r#"
        [
            "[STATUS] (503) == 200",
            "[BODY].status (DOWN) == UP",
            "[RESPONSE_TIME] (812) < 500",
            "len([BODY].data) (0) > 0",
        ]
    "#]]
    .assert_debug_eq(&evaluate_all(&conditions, &failing));
    let passing = Facts {
        status: Some(200),
        response_time: Some(Duration::from_millis(20)),
        body: Some(r#"{"status":"UP","data":[1]}"#.to_string()),
        connected: true,
        ..Facts::default()
    };
    assert_eq!(evaluate_all(&conditions, &passing), Vec::<String>::new());
    assert_eq!(evaluate_all(&[], &failing), Vec::<String>::new());
}

#[test]
fn body_is_parsed_lazily_and_once() {
    let facts = body(r#"{"status":"UP"}"#);
    let observed = Observed::new(&facts);
    let status = Condition::parse("[STATUS] == 200").unwrap();
    let whole_body = Condition::parse("[BODY] == x").unwrap();
    assert!(status.evaluate_observed(&observed).ok);
    assert!(!whole_body.evaluate_observed(&observed).ok);
    assert!(
        observed.json.get().is_none(),
        "no JSON path used yet, so no parse"
    );
    let path = Condition::parse("[BODY].status == UP").unwrap();
    assert!(path.evaluate_observed(&observed).ok);
    let first = observed
        .json
        .get()
        .expect("parsed")
        .as_ref()
        .ok()
        .map(std::ptr::from_ref);
    assert!(path.evaluate_observed(&observed).ok);
    let second = observed
        .json
        .get()
        .expect("parsed")
        .as_ref()
        .ok()
        .map(std::ptr::from_ref);
    assert_eq!(first, second, "the cached parse is reused");
}

#[test]
fn go_numbers_and_durations() {
    let ints: String = [
        "0",
        "-0",
        "42",
        "+42",
        "-42",
        "0x1F",
        "0X1f",
        "0o17",
        "0b101",
        "017",
        "08",
        "1_000",
        "1__0",
        "_1",
        "1_",
        "0x_1F",
        "0x",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "",
        "-",
        "1.0",
        " 1",
    ]
    .iter()
    .map(|text| format!("{text:?} -> {:?}\n", go_int(text)))
    .collect();
    expect![[r#"
        "0" -> Some(0)
        "-0" -> Some(0)
        "42" -> Some(42)
        "+42" -> Some(42)
        "-42" -> Some(-42)
        "0x1F" -> Some(31)
        "0X1f" -> Some(31)
        "0o17" -> Some(15)
        "0b101" -> Some(5)
        "017" -> Some(15)
        "08" -> None
        "1_000" -> Some(1000)
        "1__0" -> None
        "_1" -> None
        "1_" -> None
        "0x_1F" -> Some(31)
        "0x" -> None
        "9223372036854775807" -> Some(9223372036854775807)
        "9223372036854775808" -> None
        "-9223372036854775808" -> Some(-9223372036854775808)
        "" -> None
        "-" -> None
        "1.0" -> None
        " 1" -> None
    "#]]
    .assert_eq(&ints);
    let durations: String = [
        "0", "-0", "48h", "1h30m", "1.5h", ".5s", "1.s", "300ms", "2us", "2µs", "2μs", "5ns",
        "-1m", "+1m", "7d", "1", "h", "1h.", "1.5.5h", "", "2562047h", "2562048h",
    ]
    .iter()
    .map(|text| format!("{text:?} -> {:?}\n", go_duration_nanos(text)))
    .collect();
    expect![[r#"
        "0" -> Some(0)
        "-0" -> Some(0)
        "48h" -> Some(172800000000000)
        "1h30m" -> Some(5400000000000)
        "1.5h" -> Some(5400000000000)
        ".5s" -> Some(500000000)
        "1.s" -> Some(1000000000)
        "300ms" -> Some(300000000)
        "2us" -> Some(2000)
        "2µs" -> Some(2000)
        "2μs" -> Some(2000)
        "5ns" -> Some(5)
        "-1m" -> Some(-60000000000)
        "+1m" -> Some(60000000000)
        "7d" -> None
        "1" -> None
        "h" -> None
        "1h." -> None
        "1.5.5h" -> None
        "" -> None
        "2562047h" -> Some(9223369200000000000)
        "2562048h" -> None
    "#]]
    .assert_eq(&durations);
    let formatted: String = [
        0,
        999,
        1_000,
        45_000,
        60_000,
        65_000,
        3_600_000,
        3_615_000,
        5_400_000,
        172_800_000,
        -7_200_000,
    ]
    .iter()
    .map(|ms| format!("{ms} -> {}\n", format_millis(*ms)))
    .collect();
    expect![[r#"
        0 -> 0s
        999 -> 0s
        1000 -> 1s
        45000 -> 45s
        60000 -> 1m
        65000 -> 1m5s
        3600000 -> 1h
        3615000 -> 1h0m15s
        5400000 -> 1h30m
        172800000 -> 48h
        -7200000 -> -2h
    "#]]
    .assert_eq(&formatted);
}

#[test]
fn globs() {
    let cases = [
        ("*", ""),
        ("*", "anything"),
        ("a*", "abc"),
        ("a*c", "abxc"),
        ("a*c", "abxd"),
        ("*a*a*", "banana"),
        ("?", ""),
        ("?", "é"),
        ("a?c", "abc"),
        ("[abc]", "b"),
        ("[a-c]x", "cx"),
        ("[^a-c]x", "cx"),
        ("[\\]]", "]"),
        ("\\*", "*"),
        ("\\*", "a"),
        ("", ""),
        ("", "a"),
    ];
    let rendered: String = cases
        .iter()
        .map(|(pattern, text)| {
            let matched = Glob::compile(pattern).map(|glob| glob.matches(text));
            format!("{pattern:?} {text:?} -> {matched:?}\n")
        })
        .collect();
    expect![[r#"
        "*" "" -> Ok(true)
        "*" "anything" -> Ok(true)
        "a*" "abc" -> Ok(true)
        "a*c" "abxc" -> Ok(true)
        "a*c" "abxd" -> Ok(false)
        "*a*a*" "banana" -> Ok(true)
        "?" "" -> Ok(false)
        "?" "é" -> Ok(true)
        "a?c" "abc" -> Ok(true)
        "[abc]" "b" -> Ok(true)
        "[a-c]x" "cx" -> Ok(true)
        "[^a-c]x" "cx" -> Ok(false)
        "[\\]]" "]" -> Ok(true)
        "\\*" "*" -> Ok(true)
        "\\*" "a" -> Ok(false)
        "" "" -> Ok(true)
        "" "a" -> Ok(false)
    "#]]
    .assert_eq(&rendered);
}

/// Pieces conditions are made of, to build near-miss conditions the parser must survive.
fn condition_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("[BODY]"),
        Just("[STATUS]"),
        Just("[CERTIFICATE_EXPIRATION]"),
        Just("[IP]"),
        Just(".data"),
        Just(".a"),
        Just("[0]"),
        Just("[9]"),
        Just("["),
        Just("]"),
        Just("("),
        Just(")"),
        Just(" == "),
        Just(" != "),
        Just(" < "),
        Just(" >= "),
        Just("=="),
        Just("len("),
        Just("has("),
        Just("pat("),
        Just("any("),
        Just("*"),
        Just("?"),
        Just("\\"),
        Just(","),
        Just("1"),
        Just("-"),
        Just("0x"),
        Just("48h"),
        Just("1.5"),
        Just("é"),
        Just(" "),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn json_soup() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|flag| flag.to_string()),
        any::<i64>().prop_map(|number| number.to_string()),
        any::<f64>().prop_map(|number| number.to_string()),
        "\\PC{0,8}".prop_map(|text| format!("{text:?}")),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec(
                (prop_oneof![Just("a"), Just("data"), Just("0")], inner),
                0..4
            )
            .prop_map(|entries| {
                let fields: Vec<String> = entries
                    .iter()
                    .map(|(key, value)| format!("{key:?}:{value}"))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

proptest! {
    #[test]
    fn parse_never_panics(text in any::<String>()) {
        let _ = Condition::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_near_misses(text in condition_soup()) {
        if let Ok(condition) = Condition::parse(&text) {
            let _ = condition.evaluate(&body(r#"{"data":[1,{"a":"x"}],"a":2}"#));
        }
    }

    #[test]
    fn evaluate_never_panics(
        text in prop_oneof![any::<String>(), json_soup()],
        status in any::<Option<u16>>(),
        certificate in any::<Option<i64>>(),
        condition in condition_soup(),
    ) {
        let facts = Facts {
            status,
            body: Some(text),
            certificate_expiration_ms: certificate,
            ..Facts::default()
        };
        let fixed = [
            "[BODY] == 1",
            "[BODY].data[0].a == x",
            "[BODY][0][1] > 5",
            "len([BODY]) > 0",
            "len([BODY].data) >= 1",
            "has([BODY].a) == true",
            "[BODY].a == pat(*x?[a-z]*)",
            "[BODY].a != any(1, 2, x)",
            "[CERTIFICATE_EXPIRATION] > 48h",
            "[BODY].a < [BODY].data",
        ];
        let mut conditions: Vec<Condition> =
            fixed.iter().filter_map(|text| Condition::parse(text).ok()).collect();
        prop_assert_eq!(conditions.len(), fixed.len());
        conditions.extend(Condition::parse(&condition).ok());
        let failed = evaluate_all(&conditions, &facts);
        for shown in &failed {
            prop_assert!(!shown.contains('\n'));
        }
    }

    #[test]
    fn shown_substitutes_and_keeps_the_condition(status in any::<u16>()) {
        let evaluation = Condition::parse("[STATUS] == 200").unwrap().evaluate(&http(status, ""));
        prop_assert_eq!(evaluation.ok, status == 200);
        prop_assert_eq!(evaluation.shown, format!("[STATUS] ({status}) == 200"));
    }
}
