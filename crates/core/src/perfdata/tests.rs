use std::fmt::Write as _;

use expect_test::{Expect, expect};
use proptest::prelude::*;

use super::*;

/// Renders a parse result compactly: one line per field, item and problem.
fn render(output: &PluginOutput) -> String {
    let mut rendered = String::new();
    let _ = writeln!(rendered, "summary: {:?}", output.summary);
    if !output.long_text.is_empty() {
        let _ = writeln!(rendered, "long_text: {:?}", output.long_text);
    }
    render_items(&mut rendered, &output.perfdata, &output.problems);
    rendered
}

fn render_items(rendered: &mut String, items: &[PerfItem], problems: &[PerfProblem]) {
    for item in items {
        let value = match item.value {
            Some(value) => render_number(value),
            None => "U".to_string(),
        };
        let _ = write!(rendered, "item {:?} = {value} {:?}", item.label, item.unit);
        if let Some(warn) = &item.warn {
            let _ = write!(rendered, " warn={}", render_range(warn));
        }
        if let Some(crit) = &item.crit {
            let _ = write!(rendered, " crit={}", render_range(crit));
        }
        if let Some(min) = item.min {
            let _ = write!(rendered, " min={}", render_number(min));
        }
        if let Some(max) = item.max {
            let _ = write!(rendered, " max={}", render_number(max));
        }
        rendered.push('\n');
    }
    for problem in problems {
        let _ = writeln!(rendered, "problem {:?}: {}", problem.item, problem.reason);
    }
}

fn render_range(range: &Range) -> String {
    let inside = if range.inside { "@" } else { "" };
    format!(
        "{inside}[{}, {}]",
        render_number(range.start),
        render_number(range.end)
    )
}

/// Plain decimal, or scientific notation when that would be long.
fn render_number(number: f64) -> String {
    let plain = number.to_string();
    if plain.len() > 20 {
        return format!("{number:e}");
    }
    plain
}

/// Parses a whole plugin output and compares its rendering with the snapshot.
fn check(input: &str, expect: Expect) {
    expect.assert_eq(&render(&parse_output(input)));
}

/// Parses a bare perfdata string (what follows the `|`) and compares with the snapshot.
fn check_perfdata(input: &str, expect: Expect) {
    let (items, problems) = parse_perfdata(input);
    let mut rendered = String::new();
    render_items(&mut rendered, &items, &problems);
    expect.assert_eq(&rendered);
}

// ---- output structure ----

#[test]
fn empty_input() {
    check(
        "",
        expect![[r#"
        summary: ""
    "#]],
    );
}

#[test]
fn output_without_pipe_is_all_summary() {
    check(
        "  OK - all fine  \n",
        expect![[r#"
        summary: "OK - all fine"
    "#]],
    );
}

#[test]
fn summary_and_one_item() {
    check(
        "OK - fine | a=1",
        expect![[r#"
        summary: "OK - fine"
        item "a" = 1 None
    "#]],
    );
}

#[test]
fn pipe_with_nothing_after_it() {
    check(
        "OK |  \n",
        expect![[r#"
        summary: "OK"
    "#]],
    );
}

#[test]
fn long_output_with_perfdata_on_later_lines() {
    check(
        "OK - summary | a=1\nline one\n  indented line two | b=2\nc=3 d=4ms\ntrailing text | e=5",
        expect![[r#"
            summary: "OK - summary"
            long_text: "line one\n  indented line two"
            item "a" = 1 None
            item "b" = 2 None
            item "c" = 3 None
            item "d" = 0.004 Seconds
            item "e" = 5 None
            problem "trailing": missing '=' between label and value
            problem "text": missing '=' between label and value
            problem "|": missing '=' between label and value
        "#]],
    );
}

#[test]
fn long_output_without_perfdata_on_first_line() {
    check(
        "WARNING - two of three\n\nfirst detail\n\nsecond detail\n| 'disk a'=1 'disk b'=2\n",
        expect![[r#"
            summary: "WARNING - two of three"
            long_text: "first detail\n\nsecond detail"
            item "disk a" = 1 None
            item "disk b" = 2 None
        "#]],
    );
}

#[test]
fn long_output_without_any_perfdata() {
    check(
        "CRITICAL - down\nhost a: down   \nhost b: up\n\n",
        expect![[r#"
            summary: "CRITICAL - down"
            long_text: "host a: down\nhost b: up"
        "#]],
    );
}

#[test]
fn crlf_line_endings() {
    check(
        "OK - fine | a=1\r\ndetail\r\nmore | b=2\r\nc=3\r\n",
        expect![[r#"
            summary: "OK - fine"
            long_text: "detail\nmore"
            item "a" = 1 None
            item "b" = 2 None
            item "c" = 3 None
        "#]],
    );
}

#[test]
fn second_pipe_on_first_line_is_a_broken_item() {
    check(
        "OK | a=1 | b=2",
        expect![[r#"
            summary: "OK"
            item "a" = 1 None
            item "b" = 2 None
            problem "|": missing '=' between label and value
        "#]],
    );
}

// ---- labels ----

#[test]
fn quoted_label_with_spaces_and_equals() {
    check_perfdata(
        "'disk usage /home'=55% 'a=b'=2 'C:\\ used %'=50%;80;90;0;100",
        expect![[r#"
            item "disk usage /home" = 55 Percent
            item "a=b" = 2 None
            item "C:\\ used %" = 50 Percent warn=[0, 80] crit=[0, 90] min=0 max=100
        "#]],
    );
}

#[test]
fn quoted_label_with_escaped_quote() {
    check_perfdata(
        "'it''s'=1 ''''=2 'a'' ''b'=3",
        expect![[r#"
            item "it's" = 1 None
            item "'" = 2 None
            item "a' 'b" = 3 None
        "#]],
    );
}

#[test]
fn unicode_label() {
    check_perfdata(
        "température=21.5 'durée totale'=3s",
        expect![[r#"
            item "température" = 21.5 None
            item "durée totale" = 3 Seconds
        "#]],
    );
}

#[test]
fn empty_label() {
    check_perfdata(
        "=1 ''=2 ok=3",
        expect![[r#"
            item "ok" = 3 None
            problem "=1": empty label
            problem "''=2": empty label
        "#]],
    );
}

#[test]
fn missing_equals_sign() {
    check_perfdata(
        "foo a=1 'quoted' b=2",
        expect![[r#"
            item "a" = 1 None
            item "b" = 2 None
            problem "foo": missing '=' between label and value
            problem "'quoted'": expected '=' right after the quoted label
        "#]],
    );
}

#[test]
fn quote_inside_unquoted_label() {
    check_perfdata(
        "ab'c=1 d=2",
        expect![[r#"
            item "d" = 2 None
            problem "ab'c=1": single quote in an unquoted label
        "#]],
    );
}

#[test]
fn text_between_closing_quote_and_equals() {
    check_perfdata(
        "'a'b=1 'a' =2 c=3",
        expect![[r#"
            item "c" = 3 None
            problem "'a'b=1": expected '=' right after the quoted label
            problem "'a'": expected '=' right after the quoted label
            problem "=2": empty label
        "#]],
    );
}

#[test]
fn unterminated_quote_swallows_the_rest() {
    check_perfdata(
        "a=1 'broken=2 c=3  ",
        expect![[r#"
            item "a" = 1 None
            problem "'broken=2 c=3": unterminated quote in label
        "#]],
    );
}

#[test]
fn unterminated_quote_only_spoils_its_own_line() {
    check(
        "OK | a=1 'broken=2 c=3\nlong | d=4\n'also broken=5\ne=6",
        expect![[r#"
            summary: "OK"
            long_text: "long"
            item "a" = 1 None
            item "d" = 4 None
            item "e" = 6 None
            problem "'broken=2 c=3": unterminated quote in label
            problem "'also broken=5": unterminated quote in label
        "#]],
    );
}

// ---- values and units ----

#[test]
fn time_units_convert_to_seconds() {
    check_perfdata(
        "time=250ms a=2s b=1500us c=0.5s;1;2;0;10 d=100ms;200;500;0",
        expect![[r#"
            item "time" = 0.25 Seconds
            item "a" = 2 Seconds
            item "b" = 0.0015 Seconds
            item "c" = 0.5 Seconds warn=[0, 1] crit=[0, 2] min=0 max=10
            item "d" = 0.1 Seconds warn=[0, 0.2] crit=[0, 0.5] min=0
        "#]],
    );
}

#[test]
fn byte_units_convert_with_binary_multiples() {
    check_perfdata(
        "b=512B size=2KB m=3MB g=1.5GB t=1TB used=10MB;20;30;0;40",
        expect![[r#"
            item "b" = 512 Bytes
            item "size" = 2048 Bytes
            item "m" = 3145728 Bytes
            item "g" = 1610612736 Bytes
            item "t" = 1099511627776 Bytes
            item "used" = 10485760 Bytes warn=[0, 20971520] crit=[0, 31457280] min=0 max=41943040
        "#]],
    );
}

#[test]
fn lowercase_byte_units_are_accepted() {
    check_perfdata(
        "k=1kb m=1mb g=1gb t=1tb",
        expect![[r#"
            item "k" = 1024 Bytes
            item "m" = 1048576 Bytes
            item "g" = 1073741824 Bytes
            item "t" = 1099511627776 Bytes
        "#]],
    );
}

#[test]
fn percent_counter_and_no_unit() {
    check_perfdata(
        "pct=55%;80;90;0;100 packets=12345c plain=-3.25",
        expect![[r#"
            item "pct" = 55 Percent warn=[0, 80] crit=[0, 90] min=0 max=100
            item "packets" = 12345 Counter
            item "plain" = -3.25 None
        "#]],
    );
}

#[test]
fn exponent_forms() {
    check_perfdata(
        "a=1e3 b=-1.5E-2 c=2.5e+1ms d=.5 e=5. f=+7 g=1e3e",
        expect![[r#"
            item "a" = 1000 None
            item "b" = -0.015 None
            item "c" = 0.025 Seconds
            item "d" = 0.5 None
            item "e" = 5 None
            item "f" = 7 None
            problem "g=1e3e": unknown unit 'e'
        "#]],
    );
}

#[test]
fn unknown_value() {
    check_perfdata(
        "a=U b=U;5;10;0;100 rta=Ums;100;500;0 odd=Ufoo;1",
        expect![[r#"
            item "a" = U None
            item "b" = U None warn=[0, 5] crit=[0, 10] min=0 max=100
            item "rta" = U Seconds warn=[0, 0.1] crit=[0, 0.5] min=0
            item "odd" = U None warn=[0, 1]
        "#]],
    );
}

#[test]
fn unknown_units() {
    check_perfdata(
        "a=1xyz b=1Kb c=1kB d=1b e=1 f=5MiB",
        expect![[r#"
            item "e" = 1 None
            problem "a=1xyz": unknown unit 'xyz'
            problem "b=1Kb": unknown unit 'Kb'
            problem "c=1kB": unknown unit 'kB'
            problem "d=1b": unknown unit 'b'
            problem "f=5MiB": unknown unit 'MiB'
        "#]],
    );
}

#[test]
fn bad_numbers() {
    check_perfdata(
        "a=abc b=1.2.3 c= d=- e=inf f=NaN g=1,5 h=;5 i=1;abc j=1;;;x k=1;;;;y l=e5",
        expect![[r#"
            problem "a=abc": value: 'abc' is not a number
            problem "b=1.2.3": value: '1.2.3' is not a number
            problem "c=": missing value
            problem "d=-": value: '-' is not a number
            problem "e=inf": value: 'inf' is not a number
            problem "f=NaN": value: 'NaN' is not a number
            problem "g=1,5": unknown unit ',5'
            problem "h=;5": missing value
            problem "i=1;abc": warn: 'abc' is not a number
            problem "j=1;;;x": min: 'x' is not a number
            problem "k=1;;;;y": max: 'y' is not a number
            problem "l=e5": value: 'e5' is not a number
        "#]],
    );
}

#[test]
fn numbers_out_of_range() {
    check_perfdata(
        "a=1e999 b=1e306TB c=1;1e308GB d=1TB;;;;1e300 e=1;2e300:;;1e306 ok=1e306",
        expect![[r#"
            item "e" = 1 None warn=[2e300, inf] min=1e306
            item "ok" = 1e306 None
            problem "a=1e999": value: '1e999' is out of range
            problem "b=1e306TB": value: 1e306 is out of range once converted to base units
            problem "c=1;1e308GB": warn: '1e308GB' is not a number
            problem "d=1TB;;;;1e300": max: 1e300 is out of range once converted to base units
        "#]],
    );
}

// ---- ranges ----

#[test]
fn range_forms() {
    check_perfdata(
        "plain=5;10;20 open_end=5;10:;20: no_start=5;~:10;~:20 both=5;10:20;@10:20 inside_plain=5;@10 implicit_start=5;:10 everything=5;~:;@~:",
        expect![[r#"
            item "plain" = 5 None warn=[0, 10] crit=[0, 20]
            item "open_end" = 5 None warn=[10, inf] crit=[20, inf]
            item "no_start" = 5 None warn=[-inf, 10] crit=[-inf, 20]
            item "both" = 5 None warn=[10, 20] crit=@[10, 20]
            item "inside_plain" = 5 None warn=@[0, 10]
            item "implicit_start" = 5 None warn=[0, 10]
            item "everything" = 5 None warn=[-inf, inf] crit=@[-inf, inf]
        "#]],
    );
}

#[test]
fn ranges_convert_with_the_value_unit() {
    check_perfdata(
        "time=250ms;100:200;@~:1000 size=1KB;2:;~:4;0;8",
        expect![[r#"
            item "time" = 0.25 Seconds warn=[0.1, 0.2] crit=@[-inf, 1]
            item "size" = 1024 Bytes warn=[2048, inf] crit=[-inf, 4096] min=0 max=8192
        "#]],
    );
}

#[test]
fn bad_ranges() {
    check_perfdata(
        "a=5;20:10 b=5;-5 c=5;@ d=5;1:2:3 e=5;~ f=5;;10:~ g=5;@20:10 ok=5;-5:-1",
        expect![[r#"
            item "ok" = 5 None warn=[-5, -1]
            problem "a=5;20:10": warn: range '20:10' starts after it ends
            problem "b=5;-5": warn: range '-5' means 0:-5, which starts after it ends
            problem "c=5;@": warn: empty range in '@'
            problem "d=5;1:2:3": warn: '2:3' is not a number
            problem "e=5;~": warn: '~' is not a number
            problem "f=5;;10:~": crit: '~' is not a number
            problem "g=5;@20:10": warn: range '@20:10' starts after it ends
        "#]],
    );
}

// ---- fields ----

#[test]
fn empty_and_dropped_trailing_fields() {
    check_perfdata(
        "a=1 b=1;;; c=1;5;;0; d=1;;10 e=1; f=1;;;;",
        expect![[r#"
            item "a" = 1 None
            item "b" = 1 None
            item "c" = 1 None warn=[0, 5] min=0
            item "d" = 1 None crit=[0, 10]
            item "e" = 1 None
            item "f" = 1 None
        "#]],
    );
}

#[test]
fn too_many_fields() {
    check_perfdata(
        "a=1;2;3;4;5;6 b=1;;;;; c=1;2;3;4;5",
        expect![[r#"
            item "c" = 1 None warn=[0, 2] crit=[0, 3] min=4 max=5
            problem "a=1;2;3;4;5;6": too many ';'-separated fields (6; at most 5: value;warn;crit;min;max)
            problem "b=1;;;;;": too many ';'-separated fields (6; at most 5: value;warn;crit;min;max)
        "#]],
    );
}

// ---- whitespace and resynchronisation ----

#[test]
fn whitespace_is_tolerated() {
    check(
        "OK |  a=1 \t\t b=2   \t",
        expect![[r#"
            summary: "OK"
            item "a" = 1 None
            item "b" = 2 None
        "#]],
    );
}

#[test]
fn one_broken_item_among_good_ones() {
    check_perfdata(
        "a=1 b=x c=3 d=4zz e=5;;;;; f=6",
        expect![[r#"
            item "a" = 1 None
            item "c" = 3 None
            item "f" = 6 None
            problem "b=x": value: 'x' is not a number
            problem "d=4zz": unknown unit 'zz'
            problem "e=5;;;;;": too many ';'-separated fields (6; at most 5: value;warn;crit;min;max)
        "#]],
    );
}

#[test]
fn perfdata_string_may_span_lines() {
    check_perfdata(
        "a=1\n'b c'=2\r\n\td=3",
        expect![[r#"
            item "a" = 1 None
            item "b c" = 2 None
            item "d" = 3 None
        "#]],
    );
}

// ---- real plugin outputs ----

#[test]
fn check_disk() {
    check(
        "DISK OK - free space: / 3326 MB (56% inode=99%); /boot 150 MB (80% inode=99%);| /=2643MB;5948;6043;0;6058 /boot=36MB;180;190;0;200",
        expect![[r#"
            summary: "DISK OK - free space: / 3326 MB (56% inode=99%); /boot 150 MB (80% inode=99%);"
            item "/" = 2771386368 Bytes warn=[0, 6236930048] crit=[0, 6336544768] min=0 max=6352273408
            item "/boot" = 37748736 Bytes warn=[0, 188743680] crit=[0, 199229440] min=0 max=209715200
        "#]],
    );
}

#[test]
fn check_load() {
    check(
        "OK - load average: 0.06, 0.05, 0.01|load1=0.060;5.000;10.000;0; load5=0.050;4.000;6.000;0; load15=0.010;3.000;4.000;0;",
        expect![[r#"
            summary: "OK - load average: 0.06, 0.05, 0.01"
            item "load1" = 0.06 None warn=[0, 5] crit=[0, 10] min=0
            item "load5" = 0.05 None warn=[0, 4] crit=[0, 6] min=0
            item "load15" = 0.01 None warn=[0, 3] crit=[0, 4] min=0
        "#]],
    );
}

#[test]
fn check_http() {
    check(
        "HTTP OK: HTTP/1.1 200 OK - 5421 bytes in 0.045 second response time |time=0.045123s;1.000000;2.000000;0.000000;10.000000 size=5421B;;;0\n",
        expect![[r#"
            summary: "HTTP OK: HTTP/1.1 200 OK - 5421 bytes in 0.045 second response time"
            item "time" = 0.045123 Seconds warn=[0, 1] crit=[0, 2] min=0 max=10
            item "size" = 5421 Bytes min=0
        "#]],
    );
}

#[test]
fn check_ping() {
    check(
        "PING OK - Packet loss = 0%, RTA = 0.80 ms|rta=0.800000ms;100.000000;500.000000;0.000000 pl=0%;20;60;0",
        expect![[r#"
            summary: "PING OK - Packet loss = 0%, RTA = 0.80 ms"
            item "rta" = 0.0008 Seconds warn=[0, 0.1] crit=[0, 0.5] min=0
            item "pl" = 0 Percent warn=[0, 20] crit=[0, 60] min=0
        "#]],
    );
}

#[test]
fn check_swap() {
    check(
        "SWAP OK - 100% free (2047 MB out of 2047 MB) |swap=2047MB;0;0;0;2047",
        expect![[r#"
            summary: "SWAP OK - 100% free (2047 MB out of 2047 MB)"
            item "swap" = 2146435072 Bytes warn=[0, 0] crit=[0, 0] min=0 max=2146435072
        "#]],
    );
}

#[test]
fn nsclient_style_quoted_labels() {
    check(
        "OK: CPU Load ok.|'5m'=3%;80;90 '1m'=0%;80;90 '30s'=1%;80;90",
        expect![[r#"
            summary: "OK: CPU Load ok."
            item "5m" = 3 Percent warn=[0, 80] crit=[0, 90]
            item "1m" = 0 Percent warn=[0, 80] crit=[0, 90]
            item "30s" = 1 Percent warn=[0, 80] crit=[0, 90]
        "#]],
    );
}

#[test]
fn check_procs_with_long_output() {
    check(
        "PROCS WARNING: 3 processes with command name 'nginx' | procs=3;1:2;1:5;0;\nnginx 1001\nnginx 1002\nnginx 1003\n",
        expect![[r#"
            summary: "PROCS WARNING: 3 processes with command name 'nginx'"
            long_text: "nginx 1001\nnginx 1002\nnginx 1003"
            item "procs" = 3 None warn=[1, 2] crit=[1, 5] min=0
        "#]],
    );
}

// ---- Range::alerts ----

fn range_from(text: &str) -> Range {
    let (items, problems) = parse_perfdata(&format!("x=0;{text}"));
    assert!(problems.is_empty(), "{text}: {problems:?}");
    match items.first().and_then(|item| item.warn.clone()) {
        Some(range) => range,
        None => panic!("{text}: no range parsed"),
    }
}

#[test]
fn range_alerts_table() {
    let table: &[(&str, f64, bool)] = &[
        // "10" is 0:10: alert below 0 or above 10.
        ("10", -1.0, true),
        ("10", -0.001, true),
        ("10", 0.0, false),
        ("10", 5.0, false),
        ("10", 10.0, false),
        ("10", 10.001, true),
        // "10:" alerts below 10.
        ("10:", 9.999, true),
        ("10:", 10.0, false),
        ("10:", 1e300, false),
        ("10:", f64::INFINITY, false),
        // "~:10" alerts above 10.
        ("~:10", -1e300, false),
        ("~:10", f64::NEG_INFINITY, false),
        ("~:10", 10.0, false),
        ("~:10", 10.001, true),
        // "10:20" alerts outside the interval.
        ("10:20", 9.0, true),
        ("10:20", 10.0, false),
        ("10:20", 15.0, false),
        ("10:20", 20.0, false),
        ("10:20", 21.0, true),
        // "@10:20" alerts inside, bounds included.
        ("@10:20", 9.999, false),
        ("@10:20", 10.0, true),
        ("@10:20", 15.0, true),
        ("@10:20", 20.0, true),
        ("@10:20", 20.001, false),
        // "@10" is inside 0:10.
        ("@10", -1.0, false),
        ("@10", 0.0, true),
        ("@10", 10.0, true),
        ("@10", 11.0, false),
        // "@~:10" alerts at or below 10; "@10:" at or above.
        ("@~:10", -1e300, true),
        ("@~:10", 10.0, true),
        ("@~:10", 10.5, false),
        ("@10:", 9.5, false),
        ("@10:", 10.0, true),
        // A single point.
        ("5:5", 5.0, false),
        ("5:5", 5.001, true),
        ("@5:5", 5.0, true),
        ("@5:5", 4.999, false),
        // Negative bounds.
        ("-10:-5", -7.0, false),
        ("-10:-5", -4.0, true),
        ("-10:-5", -11.0, true),
        // The whole line: never alerts, or always with '@'.
        ("~:", -1e300, false),
        ("~:", 1e300, false),
        ("@~:", -1e300, true),
        ("@~:", 0.0, true),
        ("@~:", 1e300, true),
        // "0" alerts on anything but zero.
        ("0", 0.0, false),
        ("0", 0.001, true),
        ("0", -0.001, true),
    ];
    for &(range_text, value, expected) in table {
        let range = range_from(range_text);
        assert_eq!(
            range.alerts(value),
            expected,
            "range {range_text:?} ({range:?}) with value {value}"
        );
    }
}

#[test]
fn range_alerts_never_on_nan() {
    for range_text in ["10", "10:", "~:10", "@10:20", "~:", "@~:"] {
        let range = range_from(range_text);
        assert!(!range.alerts(f64::NAN), "{range_text}");
    }
}

#[test]
fn range_alerts_on_constructed_ranges() {
    let outside = Range {
        start: f64::NEG_INFINITY,
        end: 0.5,
        inside: false,
    };
    assert!(!outside.alerts(0.5));
    assert!(outside.alerts(0.6));
    let inside = Range {
        start: 0.25,
        end: f64::INFINITY,
        inside: true,
    };
    assert!(!inside.alerts(0.2));
    assert!(inside.alerts(0.25));
    assert!(inside.alerts(f64::MAX));
}

#[test]
fn problem_display() {
    let (_, problems) = parse_perfdata("a=1zz");
    let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(rendered, ["bad perfdata item 'a=1zz': unknown unit 'zz'"]);
}

// ---- properties ----

/// Checks what must hold for any input: numbers finite (range bounds may be the infinity on
/// their own side), labels and problem items non-empty, summary on one line without `|`.
fn assert_well_formed(output: &PluginOutput) -> Result<(), TestCaseError> {
    prop_assert!(!output.summary.contains('|'));
    prop_assert!(!output.summary.contains('\n'));
    prop_assert!(!output.long_text.contains('|'));
    for item in &output.perfdata {
        prop_assert!(!item.label.is_empty());
        for number in [item.value, item.min, item.max].into_iter().flatten() {
            prop_assert!(number.is_finite(), "{item:?}");
        }
        for range in [&item.warn, &item.crit].into_iter().flatten() {
            prop_assert!(
                range.start.is_finite() || range.start == f64::NEG_INFINITY,
                "{item:?}"
            );
            prop_assert!(
                range.end.is_finite() || range.end == f64::INFINITY,
                "{item:?}"
            );
            prop_assert!(range.start <= range.end, "{item:?}");
        }
    }
    for problem in &output.problems {
        prop_assert!(!problem.item.is_empty());
        prop_assert!(!problem.reason.is_empty());
    }
    Ok(())
}

const GRAMMAR_ALPHABET: &str = "'=;:@~|U.-+0123456789 \n\t\reEsmuKMGTBbckx%é";

const GRAMMAR_TOKENS: &[&str] = &[
    "'",
    "''",
    "=",
    ";",
    ":",
    "@",
    "~",
    "|",
    "U",
    "1",
    "-",
    ".",
    "e",
    "E",
    "5",
    "0.5",
    "ms",
    "us",
    "s",
    "KB",
    "kb",
    "TB",
    "B",
    "%",
    "c",
    " ",
    "\n",
    "\r\n",
    "\t",
    "1e308",
    "1e-320",
    "label",
    "'a b'",
    "x=",
    "=1",
    ";;",
    "10:",
    "~:",
    "@10:20",
    "é",
    "\u{1F600}",
];

fn grammar_string() -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = GRAMMAR_ALPHABET.chars().collect();
    prop::collection::vec(prop::sample::select(alphabet), 0..120)
        .prop_map(|characters| characters.into_iter().collect())
}

fn token_string() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(GRAMMAR_TOKENS), 0..60)
        .prop_map(|tokens| tokens.concat())
}

fn arbitrary_unicode_string() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..200)
        .prop_map(|characters| characters.into_iter().collect())
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_unicode(text in arbitrary_unicode_string()) {
        assert_well_formed(&parse_output(&text))?;
    }

    #[test]
    fn never_panics_on_any_string(text in any::<String>()) {
        assert_well_formed(&parse_output(&text))?;
    }

    #[test]
    fn never_panics_on_the_grammar_alphabet(text in grammar_string()) {
        assert_well_formed(&parse_output(&text))?;
        let (perfdata, problems) = parse_perfdata(&text);
        assert_well_formed(&PluginOutput {
            summary: String::new(),
            long_text: String::new(),
            perfdata,
            problems,
        })?;
    }

    #[test]
    fn never_panics_on_grammar_tokens(text in token_string()) {
        assert_well_formed(&parse_output(&text))?;
        let (perfdata, problems) = parse_perfdata(&text);
        assert_well_formed(&PluginOutput {
            summary: String::new(),
            long_text: String::new(),
            perfdata,
            problems,
        })?;
    }

    /// A well-formed item written out in Nagios syntax parses back to what was written.
    #[test]
    fn written_items_parse_back(
        label in "[a-zA-Z0-9_/ '=é]{1,12}",
        value in prop::option::of(-1_000_000i64..1_000_000),
        unit_index in 0usize..13,
        warn in prop::option::of((0i64..1000, 0i64..1000, any::<bool>())),
        min in prop::option::of(-1000i64..0),
        max in prop::option::of(0i64..1_000_000),
    ) {
        const KIBI: f64 = 1024.0;
        // Text, unit, and the multiplier and divisor that bring it to base units.
        let units: [(&str, Unit, f64, f64); 13] = [
            ("", Unit::None, 1.0, 1.0),
            ("s", Unit::Seconds, 1.0, 1.0),
            ("ms", Unit::Seconds, 1.0, 1e3),
            ("us", Unit::Seconds, 1.0, 1e6),
            ("%", Unit::Percent, 1.0, 1.0),
            ("B", Unit::Bytes, 1.0, 1.0),
            ("KB", Unit::Bytes, KIBI, 1.0),
            ("MB", Unit::Bytes, KIBI * KIBI, 1.0),
            ("GB", Unit::Bytes, KIBI * KIBI * KIBI, 1.0),
            ("TB", Unit::Bytes, KIBI * KIBI * KIBI * KIBI, 1.0),
            ("kb", Unit::Bytes, KIBI, 1.0),
            ("tb", Unit::Bytes, KIBI * KIBI * KIBI * KIBI, 1.0),
            ("c", Unit::Counter, 1.0, 1.0),
        ];
        let Some(&(unit_text, unit, multiplier, divisor)) = units.get(unit_index) else {
            return Err(TestCaseError::fail("unit index out of range"));
        };
        let convert = |number: f64| number * multiplier / divisor;
        // Values in thousandths, so decimals get exercised too.
        let value = value.map(|thousandths| thousandths as f64 / 1000.0);
        let warn = warn.map(|(low, high, inside)| (low.min(high) as f64, low.max(high) as f64, inside));
        let min = min.map(|min| min as f64);
        let max = max.map(|max| max as f64);

        let quoted_label = format!("'{}'", label.replace('\'', "''"));
        let value_text = value.map_or("U".to_string(), |value| value.to_string());
        let warn_text = warn.map_or(String::new(), |(start, end, inside)| {
            format!("{}{start}:{end}", if inside { "@" } else { "" })
        });
        let min_text = min.map_or(String::new(), |min| min.to_string());
        let max_text = max.map_or(String::new(), |max| max.to_string());
        let text = format!(
            "OK | {quoted_label}={value_text}{unit_text};{warn_text};;{min_text};{max_text} next=1"
        );

        let output = parse_output(&text);
        prop_assert!(output.problems.is_empty(), "{text}: {:?}", output.problems);
        prop_assert_eq!(output.perfdata.len(), 2);
        let expected = PerfItem {
            label,
            value: value.map(convert),
            unit,
            warn: warn.map(|(start, end, inside)| Range {
                start: convert(start),
                end: convert(end),
                inside,
            }),
            crit: None,
            min: min.map(convert),
            max: max.map(convert),
        };
        prop_assert_eq!(output.perfdata.first(), Some(&expected), "{}", text);
    }
}
