//! rtalert in a harness: rules and throttling on synthetic detections with chosen times.

mod common;
use common::*;
use gst::prelude::*;

#[test]
fn cooldown_per_key_with_suppressed_counts() {
    // Each appearance is an activation; a person flickering every second re-fires.
    let (mut h, bus) = harness(&[("rules", "p: class=person cooldown=5")]);
    for i in 0..14u64 {
        let objects: &[Obj] = if i % 2 == 0 {
            &[person(10.0, 10.0)]
        } else {
            &[]
        };
        push(&mut h, 0, i * S, objects);
    }
    // Activations at 0, 2, ..., 12 s: 0 goes out, 2 and 4 are cooled down, 6 goes out
    // saying 2 were suppressed, 8 and 10 are cooled down, 12 goes out saying 2.
    assert_eq!(
        summary(&alerts(&bus)),
        vec![
            s("start", "p", 0.0, 0),
            s("start", "p", 6.0, 2),
            s("start", "p", 12.0, 2)
        ]
    );
    let st = stats(&h);
    assert_eq!(st.get::<u64>("emitted").unwrap(), 3);
    assert_eq!(st.get::<u64>("suppressed-cooldown").unwrap(), 4);
}

#[test]
fn cooldown_key_by_source() {
    let (mut h, bus) = harness(&[("rules", "p: class=person cooldown=60")]);
    push(&mut h, 0, 0, &[person(10.0, 10.0)]);
    push(&mut h, 1, 0, &[person(10.0, 10.0)]);
    let a = alerts(&bus);
    assert_eq!(a.len(), 2, "each source is its own key");
    assert_eq!(
        (a[0]["source_id"].as_u64(), a[1]["source_id"].as_u64()),
        (Some(0), Some(1))
    );
}

#[test]
fn burst_becomes_one_alert_then_suppression_until_the_window_passes() {
    let (mut h, bus) = harness(&[("rules", "b: class=person cooldown=0 burst=3/10")]);
    for i in 0..16u64 {
        let objects: &[Obj] = if i % 2 == 0 {
            &[person(10.0, 10.0)]
        } else {
            &[]
        };
        push(&mut h, 0, i * S, objects);
    }
    let a = alerts(&bus);
    // 0, 2, 4 go out; 6 is the 4th within 10 s: one burst alert; 8..14 suppressed until 16.
    assert_eq!(
        summary(&a),
        vec![
            s("start", "b", 0.0, 0),
            s("start", "b", 2.0, 0),
            s("start", "b", 4.0, 0),
            s("burst", "b", 6.0, 0)
        ]
    );
    assert_eq!(a[3]["burst_count"], 4);
    push(&mut h, 0, 16 * S, &[person(10.0, 10.0)]);
    let a = alerts(&bus);
    assert_eq!(
        summary(&a),
        vec![s("start", "b", 16.0, 4)],
        "after the window, with what was held back"
    );
    assert_eq!(stats(&h).get::<u64>("suppressed-burst").unwrap(), 4);
}

#[test]
fn global_rate_limit() {
    let (mut h, bus) = harness(&[
        (
            "rules",
            "p: class=person cooldown=0; c: class=car cooldown=0",
        ),
        ("rate-limit", "6"), // one token every 10 s
        ("rate-burst", "2"),
    ]);
    let both = [person(10.0, 10.0), ("car", 0.9, 50.0, 50.0, 10.0, 10.0)];
    for i in 0..6u64 {
        push(&mut h, 0, i * 2 * S, if i % 2 == 0 { &both } else { &[] });
    }
    // t=0: both out (burst 2). t=4: none left. t=8: none (0.8 token). t=10 would refill one.
    assert_eq!(
        summary(&alerts(&bus)),
        vec![s("start", "p", 0.0, 0), s("start", "c", 0.0, 0)]
    );
    push(&mut h, 0, 12 * S, &both);
    let got = summary(&alerts(&bus));
    assert_eq!(got, vec![s("start", "p", 12.0, 2)]);
    assert_eq!(stats(&h).get::<u64>("suppressed-rate").unwrap(), 5);
}

#[test]
fn presence_duration_and_ended_alerts() {
    let (mut h, bus) = harness(&[(
        "rules",
        "stay: class=person duration=2 frames=3 ended=true cooldown=0",
    )]);
    for i in 0..4u64 {
        push(&mut h, 0, i * S, &[person(10.0, 10.0)]);
    }
    push(&mut h, 0, 4 * S, &[]);
    let a = alerts(&bus);
    assert_eq!(
        summary(&a),
        vec![s("start", "stay", 2.0, 0), s("ended", "stay", 4.0, 0)]
    );
    assert_eq!(a[0]["count"], 1);
    assert_eq!(a[0]["objects"][0]["label"], "person");
    // Present for less than the duration: nothing.
    push(&mut h, 0, 5 * S, &[person(10.0, 10.0)]);
    push(&mut h, 0, 6 * S, &[]);
    assert!(alerts(&bus).is_empty());
}

#[test]
fn zones_inside_outside_and_on_the_edge() {
    // Zone: the left half. Bottom-centre anchor of a 10x10 box at (x, y) is (x+5, y+10).
    let (mut h, bus) = harness(&[(
        "rules",
        "left: zone=0,0,0.5,0,0.5,1,0,1 cooldown=0 ended=true",
    )]);
    push(&mut h, 0, 0, &[person(70.0, 10.0)]); // outside
    assert!(alerts(&bus).is_empty());
    push(&mut h, 0, S, &[person(45.0, 10.0)]); // anchor x = 50: on the edge, inside
    assert_eq!(alerts(&bus).len(), 1);
    push(&mut h, 0, 2 * S, &[person(46.0, 10.0)]); // anchor x = 51: outside, ends
    assert_eq!(summary(&alerts(&bus)), vec![s("ended", "left", 2.0, 0)]);
    // Another anchor: the box centre.
    let (mut h, bus) = harness(&[("rules", "top: zone=0,0,1,0,1,0.3,0,0.3 anchor=center")]);
    push(&mut h, 0, 0, &[person(10.0, 20.0)]); // centre y = 25: inside
    assert_eq!(alerts(&bus).len(), 1);
}

#[test]
fn source_filters_classes_counts_and_confidence() {
    let (mut h, bus) = harness(&[("rules", "crowd: class=person count=2 conf=0.5 source=3")]);
    push(&mut h, 0, 0, &[person(0.0, 0.0), person(20.0, 0.0)]); // other source
    push(
        &mut h,
        3,
        0,
        &[person(0.0, 0.0), ("person", 0.4, 20.0, 0.0, 10.0, 10.0)],
    ); // one too unsure
    push(
        &mut h,
        3,
        S,
        &[person(0.0, 0.0), ("car", 0.9, 20.0, 0.0, 10.0, 10.0)],
    ); // a car
    assert!(alerts(&bus).is_empty());
    push(&mut h, 3, 2 * S, &[person(0.0, 0.0), person(20.0, 0.0)]);
    let a = alerts(&bus);
    assert_eq!(
        (a.len(), a[0]["count"].as_u64(), a[0]["source_id"].as_u64()),
        (1, Some(2), Some(3))
    );
}

#[test]
fn rules_property_reloads_while_playing_and_bad_rules_keep_the_old() {
    let (mut h, bus) = harness(&[("rules", "p: class=person cooldown=0")]);
    push(&mut h, 0, 0, &[person(0.0, 0.0)]);
    assert_eq!(alerts(&bus).len(), 1);
    let e = h.element().unwrap();
    e.set_property("rules", "c: class=car cooldown=0");
    push(&mut h, 0, S, &[("car", 0.9, 0.0, 0.0, 10.0, 10.0)]);
    assert_eq!(summary(&alerts(&bus)), vec![s("start", "c", 1.0, 0)]);
    // A bad update is refused with a warning; the car rule stays.
    e.set_property("rules", "c: zone=0,0,1,1");
    let warned = std::iter::from_fn(|| bus.pop()).any(|m| {
        matches!(m.view(), gst::MessageView::Warning(w) if w.error().to_string().contains("keeping the previous"))
    });
    assert!(warned);
    push(&mut h, 0, 2 * S, &[]);
    push(&mut h, 0, 3 * S, &[("car", 0.9, 0.0, 0.0, 10.0, 10.0)]);
    assert_eq!(summary(&alerts(&bus)), vec![s("start", "c", 3.0, 0)]);
}

#[test]
fn a_reload_ends_the_alerts_the_old_rules_had_open() {
    let (mut h, bus) = harness(&[("rules", "p: class=person cooldown=0 ended=true")]);
    push(&mut h, 2, 0, &[person(0.0, 0.0)]);
    push(&mut h, 2, S, &[person(0.0, 0.0)]);
    assert_eq!(summary(&alerts(&bus)), vec![s("start", "p", 0.0, 0)]);
    // The person is still there when the rules change: the open `start` gets its `ended`
    // (reason `reloaded`) before anything the new rules say.
    h.element()
        .unwrap()
        .set_property("rules", "p: class=person cooldown=0 ended=true min-count=2");
    let a = alerts(&bus);
    assert_eq!(summary(&a), vec![s("ended", "p", 1.0, 0)]);
    assert_eq!(a[0]["reason"], "reloaded");
    assert_eq!(
        (a[0]["source_id"].as_u64(), a[0]["frame"].as_u64()),
        (Some(2), Some(10))
    );
    assert_eq!(a[0]["duration"].as_f64(), Some(1.0));
    // Nothing was open under the new rules; a normal end carries no reason.
    push(&mut h, 2, 2 * S, &[person(0.0, 0.0), person(50.0, 50.0)]);
    push(&mut h, 2, 3 * S, &[]);
    let a = alerts(&bus);
    assert_eq!(
        summary(&a),
        vec![s("start", "p", 2.0, 0), s("ended", "p", 3.0, 0)]
    );
    assert!(a[1].get("reason").is_none());
    h.element()
        .unwrap()
        .set_property("rules", "p: class=person");
    assert!(alerts(&bus).is_empty(), "no condition was open");
}

#[test]
fn with_the_labels_upstream_known_a_reload_naming_another_class_is_refused() {
    let (mut h, bus) = harness(&[("rules", "p: class=person cooldown=0")]);
    let coco = rtmeta::labels::ModelLabels {
        producer: "rtinfer0".into(),
        labels: ["person", "car"].map(String::from).into(),
    };
    assert!(h.push_event(rtmeta::labels::event(&[], &coco)));
    push(&mut h, 0, 0, &[person(0.0, 0.0)]);
    assert_eq!(alerts(&bus).len(), 1, "no warning: person is a label");
    h.element()
        .unwrap()
        .set_property("rules", "c: class=cra cooldown=0");
    let refused = std::iter::from_fn(|| bus.pop()).any(|m| {
        matches!(m.view(), gst::MessageView::Warning(w)
            if w.error().to_string().contains("keeping the previous ones: rule \"c\": class \"cra\" never matches"))
    });
    assert!(refused);
    push(&mut h, 0, S, &[]);
    push(&mut h, 0, 2 * S, &[person(0.0, 0.0)]);
    assert_eq!(
        summary(&alerts(&bus)),
        vec![s("start", "p", 2.0, 0)],
        "the old rule stays"
    );
}

#[test]
fn rules_file_reloads_when_it_changes() {
    let dir = std::env::temp_dir().join(format!("rtalert-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.yaml");
    std::fs::write(
        &file,
        "rules:\n  - name: p\n    classes: [person]\n    cooldown: 0\n",
    )
    .unwrap();
    let (mut h, bus) = harness(&[
        ("rules-file", file.to_str().unwrap()),
        ("reload-interval", "1"),
    ]);
    push(&mut h, 0, 0, &[person(0.0, 0.0)]);
    assert_eq!(alerts(&bus).len(), 1);

    // A broken file: warning, old rules stay.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&file, "rules:\n  - name: p\n    zone: [[0, 0]]\n").unwrap();
    bump_mtime(&file, 1);
    push(&mut h, 0, S, &[]);
    let msgs: Vec<_> = std::iter::from_fn(|| bus.pop()).collect();
    assert!(
        msgs.iter()
            .any(|m| matches!(m.view(), gst::MessageView::Warning(w)
        if w.error().to_string().contains("rules.yaml:3:11"))),
        "warning names the line"
    );
    push(&mut h, 0, 2 * S, &[person(0.0, 0.0)]);
    assert_eq!(summary(&alerts(&bus)), vec![s("start", "p", 2.0, 0)]);

    // A good new file takes over.
    std::fs::write(
        &file,
        "rules:\n  - name: cars\n    classes: [car]\n    cooldown: 0\n",
    )
    .unwrap();
    bump_mtime(&file, 2);
    push(&mut h, 0, 3 * S, &[("car", 0.9, 0.0, 0.0, 10.0, 10.0)]);
    let msgs: Vec<_> = std::iter::from_fn(|| bus.pop()).collect();
    let warnings = |msgs: &[gst::Message]| {
        msgs.iter()
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(warnings(&msgs).is_empty(), "{:?}", warnings(&msgs));
    let alerted: Vec<_> = msgs.iter().filter_map(alert_of).collect();
    assert_eq!(summary(&alerted), vec![s("start", "cars", 3.0, 0)]);

    // New outputs in the file: the rules change now, the outputs only at a restart (said).
    std::fs::write(
        &file,
        "rules:\n  - name: cars\n    classes: [car]\n    cooldown: 0\noutputs:\n  stdout: true\n",
    )
    .unwrap();
    bump_mtime(&file, 3);
    push(&mut h, 0, 4 * S, &[]);
    let msgs: Vec<_> = std::iter::from_fn(|| bus.pop()).collect();
    assert!(
        warnings(&msgs)
            .iter()
            .any(|w| w.contains("apply when the element restarts")),
        "{:?}",
        warnings(&msgs)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Makes a rewrite visible even on file systems with coarse timestamps.
fn bump_mtime(path: &std::path::Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(secs))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
}

#[test]
fn zones_and_lines_travel_on_the_frames_with_their_state() {
    let (mut h, _bus) = harness(&[(
        "rules",
        "z: class=person zone=0,0,0.5,0,0.5,1,0,1 duration=1; any: class=car",
    )]);
    let regions = |h: &mut gst_check::Harness, t: u64| {
        let out = h.push_and_pull(frame(0, t, &[person(10.0, 10.0)])).unwrap();
        rtmeta::Regions::from_buffer(&out).expect("regions attached")
    };
    let r = regions(&mut h, 0);
    assert_eq!(r.0.len(), 1, "only rules with a zone or line: {r:?}");
    assert_eq!(r.0[0].rule, "z");
    assert_eq!(r.0[0].kind, rtmeta::RegionKind::Zone);
    assert_eq!(r.0[0].points[1], (0.5, 0.0));
    assert!(!r.0[0].active, "held 0 s of 1");
    assert!(regions(&mut h, S).0[0].active, "held 1 s");

    // Without geometry in the rules (or with regions-meta=false), buffers pass untouched.
    let (mut h, _bus) = harness(&[("rules", "any: class=person")]);
    let out = h.push_and_pull(frame(0, 0, &[person(10.0, 10.0)])).unwrap();
    assert!(rtmeta::Regions::from_buffer(&out).is_none());
    let (mut h, _bus) = harness(&[("rules", "z: zone=0,0,1,0,1,1"), ("regions-meta", "false")]);
    let out = h.push_and_pull(frame(0, 0, &[person(10.0, 10.0)])).unwrap();
    assert!(rtmeta::Regions::from_buffer(&out).is_none());
}

#[test]
fn open_conditions_end_at_eos_and_at_a_flush_which_restarts_the_clock() {
    let (mut h, bus) = harness(&[("rules", "p: class=person cooldown=30 ended=true")]);
    push(&mut h, 0, 100 * S, &[person(10.0, 10.0)]);
    push(&mut h, 0, 120 * S, &[person(10.0, 10.0)]);
    // A flushing seek: running time starts again from 0.
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    push(&mut h, 0, S, &[person(10.0, 10.0)]);
    push(&mut h, 0, 3 * S, &[person(10.0, 10.0)]);
    assert!(h.push_event(gst::event::Eos::new()));
    let a = alerts(&bus);
    let kinds: Vec<(&str, Option<&str>)> = a
        .iter()
        .map(|a| (a["kind"].as_str().unwrap(), a["reason"].as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("start", None),
            ("ended", Some("flushed")),
            // Not held back by the cooldown, which would last until 130 s of the old time.
            ("start", None),
            ("ended", Some("eos")),
        ]
    );
    assert_eq!(a[3]["duration"], 2.0);
}

#[test]
fn a_stop_without_eos_ends_open_conditions_too() {
    let (mut h, bus) = harness(&[("rules", "p: class=person ended=true")]);
    push(&mut h, 0, 0, &[person(10.0, 10.0)]);
    h.element().unwrap().set_state(gst::State::Null).unwrap();
    let a = alerts(&bus);
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(
        (a[1]["kind"].as_str(), a[1]["reason"].as_str()),
        (Some("ended"), Some("stopped"))
    );
}
