//! rtrecord on real H.264 from x264enc: clips around triggers sent the way rtalert sends them
//! (the `rt-record` query from before the encoder) and through the `record` signal, read back
//! with qtdemux: first frame a keyframe, the frames asked for, a valid MP4 after EOS, after a
//! stop mid-clip and (removed, with a warning) on a full disk. H.265 (x265enc) and VP9
//! (vp9enc) clips are read back the same way.

use gst::{glib, prelude::*};
use rtmeta::record::RecordRequest;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstrtrecord::plugin_register_static().unwrap();
    });
}

const FPS: u64 = 30;

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rtrecord-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An encoder, with a keyframe every 15 frames (0.5 s), and how its clips are read back.
struct Codec {
    encode: &'static str,
    parse: &'static str,
    decode: &'static str,
}

const H264: Codec = Codec {
    encode: "x264enc key-int-max=15 speed-preset=ultrafast tune=zerolatency ! h264parse",
    parse: "h264parse",
    decode: "avdec_h264",
};

/// 320x240 at 30 fps, H.264, into rtrecord `props`.
fn pipeline(frames: Option<u32>, props: &str) -> gst::Pipeline {
    pipeline_of(&H264, frames, props)
}

fn pipeline_of(codec: &Codec, frames: Option<u32>, props: &str) -> gst::Pipeline {
    let count = frames.map_or(String::new(), |n| format!("num-buffers={n}"));
    gst::parse::launch(&format!(
        "videotestsrc name=src {count} pattern=ball ! video/x-raw,width=320,height=240,framerate={FPS}/1 \
         ! {} ! rtrecord name=rec {props}",
        codec.encode
    ))
    .unwrap()
    .downcast()
    .unwrap()
}

/// Calls `at` with each raw frame's index, on the streaming thread before the frame goes to
/// the encoder.
fn on_frame(p: &gst::Pipeline, at: impl Fn(u64, &gst::Pad, &gst::Element) + Send + Sync + 'static) {
    let src = p.by_name("src").unwrap();
    let rec = p.by_name("rec").unwrap();
    let pad = src.static_pad("src").unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(buf) = info.buffer() {
            // Rounded: frame 61 is at 2.0333.. s.
            let i = (buf.pts().unwrap().nseconds() * FPS + 500_000_000) / 1_000_000_000;
            at(i, pad, &rec);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Sends the `rt-record` query for frame `i`'s time from `pad`, before the encoder, as
/// rtalert does.
fn ask(pad: &gst::Pad, i: u64) -> Option<String> {
    RecordRequest {
        running_time: gst::ClockTime::from_nseconds(i * 1_000_000_000 / FPS),
        reason: format!("frame {i}"),
    }
    .send(pad)
}

/// Runs to EOS; returns the element messages and warnings of rtrecord.
fn run(p: &gst::Pipeline) -> (Vec<gst::Structure>, Vec<glib::Error>) {
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let (mut clips, mut warnings) = (Vec::new(), Vec::new());
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Warning(w) => warnings.push(w.error()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "rtrecord-clip") {
                    clips.push(s.to_owned());
                }
            }
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    (clips, warnings)
}

/// The frames of an H.264 clip, as qtdemux reads them: (pts in ns, keyframe).
fn frames_of(path: &Path) -> Vec<(u64, bool)> {
    frames_with(&H264, path)
}

fn frames_with(codec: &Codec, path: &Path) -> Vec<(u64, bool)> {
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! {} name=parse ! {} ! fakesink name=out",
        path.display(),
        codec.parse,
        codec.decode
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let frames = Arc::new(Mutex::new(Vec::new()));
    let seen = frames.clone();
    let demuxed = p.by_name("out").unwrap().static_pad("sink").unwrap();
    // Decoded, so a clip that does not decode from its first frame fails here; the keyframe
    // flag is read before the decoder.
    let keys = Arc::new(Mutex::new(Vec::new()));
    let k = keys.clone();
    p.by_name("parse")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let b = info.buffer().unwrap();
            k.lock()
                .unwrap()
                .push(!b.flags().contains(gst::BufferFlags::DELTA_UNIT));
            gst::PadProbeReturn::Ok
        });
    demuxed.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        seen.lock()
            .unwrap()
            .push(info.buffer().unwrap().pts().unwrap().nseconds());
        gst::PadProbeReturn::Ok
    });
    p.set_state(gst::State::Playing).unwrap();
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the clip plays to the end");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!(
            "{} does not play: {} ({:?})",
            path.display(),
            e.error(),
            e.debug()
        );
    }
    p.set_state(gst::State::Null).unwrap();
    let mut pts = frames.lock().unwrap().clone();
    pts.sort();
    let keys = keys.lock().unwrap().clone();
    assert_eq!(pts.len(), keys.len());
    pts.into_iter().zip(keys).collect()
}

fn stats(rec: &gst::Element) -> gst::Structure {
    rec.property::<gst::Structure>("stats")
}

fn no_parts(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        assert!(
            !p.to_string_lossy().ends_with(".part"),
            "left over: {}",
            p.display()
        );
    }
}

/// Frames `n` long from a keyframe, 1/30 s apart.
fn assert_frames(frames: &[(u64, bool)], n: usize) {
    assert_eq!(frames.len(), n, "frames in the clip");
    assert!(frames[0].1, "the clip starts at a keyframe");
    assert_eq!(frames[0].0, 0, "the clip starts at 0");
    for (i, (pts, _)) in frames.iter().enumerate() {
        assert_eq!(*pts, i as u64 * 1_000_000_000 / FPS);
    }
}

#[test]
fn h265_and_vp9_clips_start_at_a_keyframe_and_play_back() {
    init();
    let codecs = [
        Codec {
            encode: "x265enc key-int-max=15 speed-preset=ultrafast tune=zerolatency ! h265parse",
            parse: "h265parse",
            decode: "avdec_h265",
        },
        Codec {
            encode: "vp9enc keyframe-max-dist=15 deadline=1 cpu-used=8 ! vp9parse",
            parse: "vp9parse",
            decode: "vp9dec",
        },
    ];
    for codec in &codecs {
        let dir = folder(codec.parse);
        let p = pipeline_of(
            codec,
            Some(90),
            &format!("location={} pre-capture=0.5 post-capture=1", dir.display()),
        );
        let answers = Arc::new(Mutex::new(Vec::new()));
        let a = answers.clone();
        on_frame(&p, move |i, pad, _| {
            if i == 40 {
                a.lock().unwrap().push(ask(pad, i));
            }
        });
        let (clips, warnings) = run(&p);
        assert!(warnings.is_empty(), "{}: {warnings:?}", codec.parse);
        let path = answers.lock().unwrap()[0].clone().expect("a clip");
        assert_eq!(clips.len(), 1, "{}", codec.parse);
        // Frame 40 at 1.33 s: from the keyframe at 0.5 s (frame 15, at or before 0.83 s)
        // to 2.33 s (frame 70).
        assert_frames(&frames_with(codec, Path::new(&path)), 55);
        no_parts(&dir);
    }
}

#[test]
fn a_query_from_before_the_encoder_gets_a_clip_from_the_pre_capture_to_the_post_capture() {
    init();
    let dir = folder("window");
    let p = pipeline(
        Some(150),
        &format!("location={} pre-capture=1 post-capture=1", dir.display()),
    );
    let answers = Arc::new(Mutex::new(Vec::new()));
    let a = answers.clone();
    on_frame(&p, move |i, pad, _| {
        if i == 60 {
            a.lock().unwrap().push(ask(pad, i));
        }
    });
    let (clips, warnings) = run(&p);
    assert!(warnings.is_empty(), "{warnings:?}");
    let answers = answers.lock().unwrap().clone();
    let path = answers[0]
        .clone()
        .expect("rtrecord answers the query through x264enc");
    assert!(
        path.starts_with(&dir.display().to_string()) && path.ends_with(".mp4"),
        "{path}"
    );
    assert_eq!(clips.len(), 1);
    let clip = &clips[0];
    assert_eq!(clip.get::<String>("location").unwrap(), path);
    // [1 s, 3 s): from the keyframe at 1 s (frame 30) to before frame 90.
    assert_frames(&frames_of(Path::new(&path)), 60);
    assert_eq!(clip.get::<u64>("frames").unwrap(), 60);
    assert_eq!(
        clip.get::<gst::ClockTime>("start").unwrap(),
        gst::ClockTime::from_seconds(1)
    );
    // 60 frames of 33.333333 ms.
    let duration = clip.get::<gst::ClockTime>("duration").unwrap();
    assert!(
        duration.nseconds().abs_diff(2_000_000_000) < 1000,
        "{duration}"
    );
    assert_eq!(
        clip.get::<u64>("bytes").unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    no_parts(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn triggers_during_a_clip_extend_it_and_later_ones_start_another_with_retention() {
    init();
    let dir = folder("extend");
    let p = pipeline(
        Some(240),
        &format!(
            "location={} pre-capture=1 post-capture=1 max-clips=1",
            dir.display()
        ),
    );
    let answers = Arc::new(Mutex::new(Vec::new()));
    let a = answers.clone();
    on_frame(&p, move |i, pad, _| {
        if [60, 75, 150].contains(&i) {
            a.lock().unwrap().push(ask(pad, i).unwrap());
        }
    });
    let rec = p.by_name("rec").unwrap();
    let (clips, warnings) = run(&p);
    assert!(warnings.is_empty(), "{warnings:?}");
    let answers = answers.lock().unwrap().clone();
    assert_eq!(answers[0], answers[1], "a trigger during a clip extends it");
    assert_ne!(answers[1], answers[2], "one after it ended starts another");
    assert_eq!(clips.len(), 2);
    let s = stats(&rec);
    assert_eq!(s.get::<u64>("triggers").unwrap(), 3);
    assert_eq!(s.get::<u64>("clips").unwrap(), 2);
    assert_eq!(
        s.get::<u64>("removed").unwrap(),
        1,
        "max-clips=1 removed the first"
    );
    assert!(!Path::new(&answers[0]).exists());
    // [4 s, 6 s): frames 120..180.
    assert_frames(&frames_of(Path::new(&answers[2])), 60);
    no_parts(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn max_duration_ends_a_clip_and_the_extended_one_had_every_frame() {
    init();
    let dir = folder("max");
    let p = pipeline(
        Some(200),
        &format!(
            "location={} pre-capture=1 post-capture=1 max-duration=2.5",
            dir.display()
        ),
    );
    let answers = Arc::new(Mutex::new(Vec::new()));
    let a = answers.clone();
    on_frame(&p, move |i, pad, _| {
        if [60, 75, 90].contains(&i) {
            a.lock().unwrap().push(ask(pad, i).unwrap());
        }
    });
    let (clips, _) = run(&p);
    assert_eq!(clips.len(), 1);
    // From 1 s; the triggers ask until 4 s, max-duration ends it at 3.5 s.
    assert_frames(&frames_of(Path::new(&answers.lock().unwrap()[0])), 75);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stopping_mid_clip_keeps_a_valid_clip_of_what_was_recorded() {
    init();
    let dir = folder("stop");
    let p = pipeline(
        None,
        &format!("location={} pre-capture=1 post-capture=60", dir.display()),
    );
    let answer = Arc::new(Mutex::new(None));
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let a = answer.clone();
    on_frame(&p, move |i, _, rec| {
        if i == 60 {
            *a.lock().unwrap() = rec.emit_by_name::<Option<String>>("record", &[]);
        }
        if i == 120 {
            let _ = stop_tx.send(());
        }
    });
    p.set_state(gst::State::Playing).unwrap();
    stop_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap();
    let rec = p.by_name("rec").unwrap();
    assert!(stats(&rec).get::<bool>("recording").unwrap());
    p.set_state(gst::State::Null).unwrap();
    let path = answer
        .lock()
        .unwrap()
        .clone()
        .expect("the signal names the clip");
    let frames = frames_of(Path::new(&path));
    // The signal records around the newest frame it has (59, at 1.97 s): from the keyframe
    // at 0.5 s, and at least up to frame 110.
    assert!(frames.len() >= 95, "{} frames", frames.len());
    assert_frames(&frames, frames.len());
    no_parts(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_removes_the_clip_with_a_warning_and_recording_goes_on() {
    init();
    let dir = folder("full");
    let p = pipeline(
        Some(240),
        &format!("location={} pre-capture=1 post-capture=1", dir.display()),
    );
    let answers = Arc::new(Mutex::new(Vec::new()));
    let a = answers.clone();
    on_frame(&p, move |i, _, rec| {
        if i == 60 || i == 150 {
            let path = rec.emit_by_name::<Option<String>>("record", &[]).unwrap();
            if i == 60 {
                // The clip is opened on the next frame: make its file the full device.
                std::os::unix::fs::symlink("/dev/full", format!("{path}.part")).unwrap();
            }
            a.lock().unwrap().push(path);
        }
    });
    let rec = p.by_name("rec").unwrap();
    let (clips, warnings) = run(&p);
    let answers = answers.lock().unwrap().clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let text = warnings[0].to_string();
    assert!(
        text.contains(&answers[0]) && text.contains("removed") && text.contains("No space left"),
        "{text}"
    );
    // filesink's own error, so an app can tell a full disk from other failures.
    assert_eq!(
        warnings[0].kind::<gst::ResourceError>(),
        Some(gst::ResourceError::NoSpaceLeft),
        "{text}"
    );
    assert!(!Path::new(&answers[0]).exists());
    let s = stats(&rec);
    assert_eq!(s.get::<u64>("failed").unwrap(), 1);
    assert_eq!(s.get::<u64>("clips").unwrap(), 1);
    assert_eq!(clips.len(), 1);
    assert_eq!(clips[0].get::<String>("location").unwrap(), answers[1]);
    // The signal records around the newest frame, 149 (4.967 s): from the keyframe at 3.5 s
    // (frame 105) to before 5.967 s (frame 179).
    assert_frames(&frames_of(Path::new(&answers[1])), 74);
    no_parts(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_folder_is_an_error_at_start() {
    init();
    let p = pipeline(Some(10), "location=/proc/rtrecord-clips");
    p.set_state(gst::State::Playing).ok();
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error");
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    assert!(
        e.error().to_string().contains("/proc/rtrecord-clips"),
        "{}",
        e.error()
    );
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn a_clip_across_a_new_segment_keeps_its_frames_in_order() {
    init();
    let dir = folder("segments");
    // Two encoded streams one after the other (concat): the second's timestamps start at 0
    // again in a segment whose base is the first's length, 2 s.
    let encode = format!(
        "video/x-raw,width=320,height=240,framerate={FPS}/1 ! {} ! c.",
        H264.encode
    );
    let p: gst::Pipeline = gst::parse::launch(&format!(
        "concat name=c ! rtrecord name=rec location={} pre-capture=1 post-capture=1 \
         videotestsrc name=src num-buffers=60 pattern=ball ! {encode} \
         videotestsrc num-buffers=60 pattern=snow ! {encode}",
        dir.display()
    ))
    .unwrap()
    .downcast()
    .unwrap();
    let answer = Arc::new(Mutex::new(None));
    let a = answer.clone();
    on_frame(&p, move |i, pad, _| {
        if i == 45 {
            // Half a frame after the streams meet: from the keyframe at 1 s (frame 30) to
            // 3.017 s, frames 30 to 90 (the second's 0 to 30).
            *a.lock().unwrap() = RecordRequest {
                running_time: gst::ClockTime::from_nseconds(2_016_666_666),
                reason: "the seam".into(),
            }
            .send(pad);
        }
    });
    let (clips, warnings) = run(&p);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(clips.len(), 1);
    let path = answer.lock().unwrap().clone().expect("an answer");
    let frames = frames_of(Path::new(&path));
    assert_eq!(frames.len(), 61, "frames in the clip");
    assert!(frames[0].1 && frames[0].0 == 0, "{:?}", frames[0]);
    // One frame time apart throughout (within the nanoseconds concat rounds its base to):
    // the second stream's frames follow the first's, not start again at 0.
    for (i, (pts, _)) in frames.iter().enumerate() {
        let want = i as u64 * 1_000_000_000 / FPS;
        assert!(
            pts.abs_diff(want) <= 1_000,
            "frame {i}: {pts} ns, not {want}"
        );
    }
    no_parts(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn new_caps_mid_clip_end_it_and_what_was_asked_for_goes_on_in_a_new_clip() {
    init();
    let dir = folder("recaps");
    let p: gst::Pipeline = gst::parse::launch(&format!(
        "videotestsrc name=src num-buffers=150 pattern=ball ! videoscale ! capsfilter name=cf \
         caps=video/x-raw,width=320,height=240,framerate={FPS}/1 ! {} ! rtrecord name=rec \
         location={} pre-capture=1 post-capture=2",
        H264.encode,
        dir.display()
    ))
    .unwrap()
    .downcast()
    .unwrap();
    let cf = p.by_name("cf").unwrap();
    on_frame(&p, move |i, pad, _| {
        if i == 45 {
            // [0.5 s, 3.5 s)
            ask(pad, 45).unwrap();
        }
        if i == 60 {
            // A camera reconnecting at another resolution, at 2 s.
            cf.set_property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("width", 160i32)
                    .field("height", 120i32)
                    .field("framerate", gst::Fraction::new(FPS as i32, 1))
                    .build(),
            );
        }
    });
    let (clips, warnings) = run(&p);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(clips.len(), 2, "{clips:?}");
    let frames: Vec<Vec<(u64, bool)>> = clips
        .iter()
        .map(|c| frames_of(Path::new(&c.get::<String>("location").unwrap())))
        .collect();
    // Before the new caps: from the keyframe at 0.5 s to them, about 1.5 s; after them:
    // from the first new keyframe to 3.5 s, about 1.5 s again.
    for f in &frames {
        assert!(f[0].1, "starts at a keyframe");
        assert!((35..=55).contains(&f.len()), "{} frames", f.len());
    }
    no_parts(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}
