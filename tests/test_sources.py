"""Corpus adapters, one tiny fixture per corpus written in its published layout (audio made with soundfile)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llaso.builders.sources import ADAPTERS, IssueLog, get_adapter
from llaso.builders.sources.base import Item
from llaso.tasks.registry import load_registry

from helpers.audio import write_tone


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def items(name: str, root: Path, task: str) -> tuple[list[Item], IssueLog]:
    log = IssueLog()
    return list(get_adapter(name).iter_items(root, task, log)), log


def check_labels(got: list[Item]) -> None:
    """Every closed-set answer is a registry label of the item's source (ignoring a final period)."""
    reg = load_registry()
    for it in got:
        task = reg.get(it.task)
        src = next(s for s in task.sources if s.name == it.source)
        if src.labels:
            assert it.answer.rstrip(".") in src.labels, (it.task, it.answer)
        assert not it.audio.startswith("/")


def test_registry_of_adapters() -> None:
    reg = load_registry()
    assert len(ADAPTERS) == 17
    for a in ADAPTERS.values():
        for t in a.tasks:
            assert t in reg
            assert a.registry_source(t) is not None  # the source name exists in tasks.yaml
    assert get_adapter("CREMA-D").name == "cremad"
    with pytest.raises(KeyError):
        get_adapter("nope")


def test_librispeech(tmp_path: Path) -> None:
    d = tmp_path / "LibriSpeech" / "test-clean" / "1089" / "134686"
    write(
        d / "1089-134686.trans.txt",
        "1089-134686-0000 HE HOPED THERE WOULD BE STEW\n1089-134686-0001 STUFF IT\n",
    )
    write_tone(d / "1089-134686-0000.flac")
    write(
        tmp_path / "LibriSpeech" / "SPEAKERS.TXT",
        ";ID|SEX|SUBSET|MINUTES|NAME\n1089 | M | test-clean | 5 | X\n",
    )
    got, log = items("librispeech", tmp_path / "LibriSpeech", "ASR")
    assert [i.answer for i in got] == ["He hoped there would be stew", "Stuff it"]
    assert got[0].audio == "test-clean/1089/134686/1089-134686-0000.flac"
    assert got[0].metadata == {"speaker_id": "1089", "clip_id": "134686", "gender": "Male"}
    assert got[0].split == "test-clean"
    assert not log.issues


def test_mls_english(tmp_path: Path) -> None:
    write(
        tmp_path / "test" / "transcripts.txt", "10226_10111_000000\tafter his nap timothy lazily stretched\n"
    )
    write_tone(
        tmp_path / "test" / "audio" / "10226" / "10111" / "10226_10111_000000.opus",
        format="OGG",
        subtype="OPUS",
    )
    write(
        tmp_path / "metainfo.txt",
        "SPEAKER | GENDER | PARTITION | MINUTES | BOOK ID | TITLE | CHAPTER\n10226 | F | test | 1 | 10111 | t | c\n",
    )
    got, _ = items("mls_english", tmp_path, "ASR")
    assert got[0].answer == "After his nap timothy lazily stretched"
    assert got[0].audio == "test/audio/10226/10111/10226_10111_000000.opus"
    assert got[0].metadata == {"index": 0, "speaker_id": "10226", "book_id": "10111", "gender": "Female"}
    adapter = type(get_adapter("mls"))(phonemize=lambda texts: [t.upper() for t in texts])
    pr = list(adapter.iter_items(tmp_path, "PR", IssueLog()))
    assert pr[0].answer == "AFTER HIS NAP TIMOTHY LAZILY STRETCHED" and pr[0].task == "PR"
    assert pr[0].source == "MLS English (IPA)"


def test_gigaspeech_official_and_hf(tmp_path: Path) -> None:
    giga = {
        "audios": [
            {
                "aid": "POD0000008621",
                "path": "audio/podcast/P0087/POD0000008621.opus",
                "source": "podcast",
                "segments": [
                    {"sid": "POD0000008621_S0000057", "text_tn": "AND HAD BEEN EVERYWHERE <COMMA>"},
                    {"sid": "POD0000008621_S0000058", "text_tn": "<MUSIC>"},
                    {"sid": "POD0000008621_S0000059", "text_tn": "NOT CUT YET <PERIOD>"},
                ],
            }
        ]
    }
    write(tmp_path / "GigaSpeech.json", json.dumps(giga))
    write_tone(tmp_path / "audio_wav" / "podcast" / "P0087" / "POD0000008621_S0000057.wav")
    got, log = items("gigaspeech", tmp_path, "ASR")
    assert [i.answer for i in got] == ["And had been everywhere,"]
    assert got[0].metadata["clip_id"] == "POD0000008621_S0000057"
    assert [i.kind for i in log.issues] == ["missing"]  # S0000059 has no segment file
    assert sum(log.skipped.values()) == 1  # the <MUSIC>-only segment

    hf = tmp_path / "hf"
    write(
        hf / "data" / "metadata" / "xs_metadata" / "xs_chunks_0000_metadata.csv",
        "sid,speaker,text_tn,original_full_path,begin_time,end_time,audio_id,title,url,source,category\n"
        "YOU0000000315_S0000660,N/A,AS THEY'RE LEAVING <COMMA> CAN KASH PULL ZAHRA ASIDE <QUESTIONMARK>,"
        "audio/youtube/P0004/YOU0000000315.opus,2389.17,2391.73,YOU0000000315,t,u,youtube,People\n",
    )
    write_tone(hf / "data" / "audio" / "xs_files" / "xs_chunks_0000" / "YOU0000000315_S0000660.wav")
    got, log = items("gigaspeech", hf, "ASR")
    assert got[0].answer == "As they're leaving, can kash pull zahra aside?"


def test_vctk(tmp_path: Path) -> None:
    write(
        tmp_path / "speaker-info.txt",
        "ID  AGE  GENDER  ACCENTS  REGION COMMENTS \n"
        "p225  23  F    English    Southern  England\n"
        "p283  24  F    Irish    Cork\n"
        "p313  24  F    Irish    County Down\n"
        "p314  26  F    SouthAfrican    Cape Town  (mic2 files unavailable)\n"
        "p999  31  M    Unknown\n",
    )
    for spk in ("p225", "p283", "p313", "p314", "p999"):
        write_tone(tmp_path / "wav48_silence_trimmed" / spk / f"{spk}_001_mic1.flac")
        write_tone(tmp_path / "wav48_silence_trimmed" / spk / f"{spk}_001_mic2.flac")
    write(tmp_path / "txt" / "p225" / "p225_001.txt", "Please call Stella.\n")
    sgc, _ = items("vctk", tmp_path, "SGC")
    assert len(sgc) == 5  # mic1 only
    assert sgc[0].answer == "Female." and "accents" not in sgc[0].metadata
    ac, _ = items("vctk", tmp_path, "AC")
    assert [i.answer for i in ac] == ["20-24.", "20-24.", "20-24.", "25-29.", "30+."]
    ar, log = items("vctk", tmp_path, "AR")
    assert [i.answer for i in ar] == ["British.", "Irish.", "Irish.", "South Africa."]
    assert ar[2].metadata["region"] == "County Down"
    assert ar[3].metadata["comments"] == "(mic2 files unavailable)"
    assert sum(log.skipped.values()) == 1  # the Unknown accent
    asr, _ = items("vctk", tmp_path, "ASR")
    assert asr[0].answer == "Please call stella."
    assert asr[0].audio == "wav48_silence_trimmed/p225/p225_001_mic1.flac"
    # the speaker steers the eval split of every task; it is not metadata the release writes
    assert [i.speaker for i in sgc] == ["p225", "p283", "p313", "p314", "p999"] and asr[0].speaker == "p225"
    for got in (sgc, ac, ar, asr):
        check_labels(got)


def test_ljspeech(tmp_path: Path) -> None:
    write(
        tmp_path / "metadata.csv",
        'LJ036-0011|(3) evidence establishing the ownership of the "murder weapon";|(three) evidence\n',
    )
    write_tone(tmp_path / "wavs" / "LJ036-0011.wav")
    got, _ = items("ljspeech", tmp_path, "ASR")
    assert got[0].answer == '(3) evidence establishing the ownership of the "murder weapon";'
    assert got[0].audio == "wavs/LJ036-0011.wav" and got[0].metadata == {"speaker_id": "LJ036-0011"}


def test_common_voice(tmp_path: Path) -> None:
    head = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment\n"
    rows = [
        "c1\tcommon_voice_en_1.mp3\tTotality implies reflexivity.\t2\t0\tsixties\tmale\tFilipino\t\ten\t",
        "c2\tcommon_voice_en_2.mp3\tA second one.\t2\t0\tfourties\tfemale_feminine\t"
        "India and South Asia (India, Pakistan, Sri Lanka)\t\ten\t",
        "c3\tcommon_voice_en_3.mp3\tThird.\t2\t0\t\t\tUnited States English|England English\t\ten\t",
        'c4\tcommon_voice_en_4.mp3\t"Quoted" text.\t2\t0\tteens\tmale\tSouthern African (South Africa, Zimbabwe, Namibia)\t\ten\t',
    ]
    write(tmp_path / "validated.tsv", head + "\n".join(rows) + "\n")
    for i in range(1, 5):
        write_tone(tmp_path / "clips" / f"common_voice_en_{i}.mp3", format="MP3")
    sgc, _ = items("common-voice", tmp_path, "SGC")
    assert [i.answer for i in sgc] == ["Male", "Female", "Male"]
    assert sgc[0].metadata == {
        "age": "sixties",
        "accents": "Filipino",
        "sentence": "Totality implies reflexivity.",
    }
    ac, _ = items("cv", tmp_path, "AC")
    assert [i.answer for i in ac] == ["Sixties", "Fourties", "Teens"]
    ar, log = items("common-voice", tmp_path, "AR")
    assert [i.answer for i in ar] == ["Filipino", "Indian English", "South African Accent"]
    assert ar[2].metadata["sentence"] == '"Quoted" text.' and "accents" not in ar[2].metadata
    assert ar[0].audio == "clips/common_voice_en_1.mp3"
    assert sum(log.skipped.values()) == 1  # two accents
    assert [i.speaker for i in sgc] == ["c1", "c2", "c4"]  # client_id
    for got in (sgc, ac, ar):
        check_labels(got)


def test_voxceleb(tmp_path: Path) -> None:
    write(
        tmp_path / "vox1_meta.csv",
        "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
        "id10942\tPoppy_Montgomery\tf\tAustralia\ttest\nid10001\tA.J._Buckley\tm\tIreland\tdev\n",
    )
    write_tone(tmp_path / "wav" / "id10942" / "abcDEF12345" / "00014.wav")
    write_tone(tmp_path / "wav" / "id10001" / "1zcIwhmdeo4" / "00001.wav")
    got, _ = items("voxceleb", tmp_path, "SGC")
    assert [i.answer for i in got] == ["Male.", "Female."]
    assert got[1].metadata == {"gender": "Female", "Name": "Poppy_Montgomery", "Nationality": "Australia"}
    assert [i.speaker for i in got] == ["id10001", "id10942"]
    check_labels(got)


def test_vocalsound(tmp_path: Path) -> None:
    for name in ("f2750_0_cough", "m0805_0_sigh", "m0805_0_throatclearing"):
        write_tone(tmp_path / "audio_16k" / f"{name}.wav")
    meta = {"f2750": ["female", 19, "United Kingdom", "EN", "no"], "m0805": ["male", 35, "India", "TA", "no"]}
    write(tmp_path / "meta" / "all_meta.json", json.dumps(meta))
    vsc, _ = items("vocalsound", tmp_path, "VSC")
    assert [i.answer for i in vsc] == ["Cough.", "Sigh.", "Throat clearing."]
    assert vsc[0].metadata == {
        "spk_id": "f2750",
        "gender": "female",
        "speaker_age": 19,
        "country": "United Kingdom",
        "native_language": "EN",
        "health_condition": "no",
    }
    sgc, _ = items("vocalsound", tmp_path, "SGC")
    assert [i.answer for i in sgc] == ["Female", "Male", "Male"]
    ac, _ = items("vocalsound", tmp_path, "AC")
    assert [i.answer for i in ac] == ["19", "35", "35"]
    assert [i.speaker for i in vsc] == ["f2750", "m0805", "m0805"]
    for got in (vsc, sgc, ac):
        check_labels(got)


def test_accentdb(tmp_path: Path) -> None:
    base = tmp_path / "accentdb_extended" / "data"
    write_tone(base / "american" / "speaker_08" / "american_s08_003.wav")
    write_tone(base / "malayalam" / "speaker_02" / "malayalam_s02_029.wav")
    write_tone(base / "klingon" / "speaker_01" / "klingon_s01_001.wav")
    got, log = items("accentdb", tmp_path, "AR")
    assert [i.answer for i in got] == ["American", "Malayalam"]
    assert got[0].metadata == {"speaker_id": "speaker_08", "clip_id": "american_s08_003"}
    assert [i.speaker for i in got] == ["american/speaker_08", "malayalam/speaker_02"]  # one per accent
    assert log.skipped
    check_labels(got)


def test_fake_or_real(tmp_path: Path) -> None:
    base = tmp_path / "for-norm"
    write_tone(base / "training" / "fake" / "file21390.mp3.wav_16k.wav_norm.wav_mono.wav_silence.wav")
    write_tone(base / "testing" / "real" / "file33576.wav_16k.wav_norm.wav_mono.wav_silence.wav")
    got, _ = items("for", tmp_path, "SSD")
    assert sorted(i.answer for i in got) == ["Fake.", "Real."]
    assert {i.split for i in got} == {"train", "test"}
    assert all(i.audio.startswith("for-norm/") for i in got)
    check_labels(got)


def test_cremad(tmp_path: Path) -> None:
    write_tone(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    write_tone(tmp_path / "AudioWAV" / "1049_IEO_FEA_LO.wav")
    write(
        tmp_path / "VideoDemographics.csv",
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n",
    )
    er, _ = items("cremad", tmp_path, "ER")
    assert [i.answer for i in er] == ["Anger.", "Fear."]
    assert er[0].metadata == {"actor": "1001", "sentence": "DFA", "age": "51", "sex": "Male"}
    eie, log = items("crema-d", tmp_path, "EIE")
    assert [i.answer for i in eie] == ["Unspecified.", "Low."]
    assert [i.speaker for i in eie] == ["1001", "1049"]
    assert [(i.kind, i.message) for i in log.issues] == [
        ("unlabelled", "actor 1049 not listed: no age or sex")
    ]
    check_labels(er + eie)


def test_cremad_without_demographics_reports_the_missing_file(tmp_path: Path) -> None:
    write_tone(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    er, log = items("cremad", tmp_path, "ER")
    assert [i.answer for i in er] == ["Anger."] and er[0].metadata == {"actor": "1001", "sentence": "DFA"}
    assert [(i.kind, Path(i.path).name) for i in log.issues] == [("missing", "VideoDemographics.csv")]
    assert "without age and sex" in log.issues[0].message


def test_meld(tmp_path: Path) -> None:
    raw = tmp_path / "MELD.Raw"
    write(
        raw / "train_sent_emo.csv",
        "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"
        '1,"You roll another hard eight, and we get married.",Chandler,joy,positive,503,1,3,19,00:14:38,00:14:40\n'
        "2,What if I asked?,Monica,neutral,neutral,563,2,3,19,00:14:41,00:14:42\n"
        "3,Hi.,Susan,surprise,negative,296,1,3,19,00:14:41,00:14:42\n"
        "4,Gone.,Joey,sadness,negative,9,9,3,19,00:14:41,00:14:42\n",
    )
    write(
        raw / "dev_sent_emo.csv",
        "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n1,Dev.,Ross,anger,negative,503,1\n",
    )
    write_tone(raw / "wav" / "train" / "dia503_utt1.wav")
    write_tone(raw / "wav" / "train" / "dia563_utt2.wav")
    write_tone(raw / "wav" / "train" / "dia296_utt1.wav")
    write(raw / "train" / "train_splits" / "dia503_utt1.mp4", "not audio")  # the wav wins
    write_tone(raw / "wav" / "dev" / "dia503_utt1.wav")
    er, log = items("meld", tmp_path, "ER")
    assert [(i.split, i.answer) for i in er] == [
        ("dev", "Anger."),
        ("train", "Joy."),
        ("train", "Neutrality."),
        ("train", "Surprise."),
    ]
    assert er[1].audio == "MELD.Raw/wav/train/dia503_utt1.wav"
    assert er[1].metadata == {
        "sent": "positive",
        "speaker": "Chandler",
        "utt": "You roll another hard eight, and we get married.",
    }
    assert [i.kind for i in log.issues] == ["missing"]  # dia9_utt9
    eie, _ = items("meld", tmp_path, "EIE")
    assert [i.answer for i in eie] == ["Negative.", "Positive.", "Neutral.", "Negative."]
    assert eie[2].metadata["emo"] == "neutrality"
    sv, log = items("meld", tmp_path, "SV")
    assert [i.answer for i in sv] == ["Ross.", "Chandler.", "Monica."]  # Susan is not one of the six
    # SV's labels are its speakers: its eval is held out by dialogue (the split's session)
    assert [i.session for i in sv] == ["dev_dia503", "train_dia503", "train_dia563"]
    check_labels(er + eie + sv)


def test_nsynth(tmp_path: Path) -> None:
    ex = {
        "keyboard_electronic_000-087-127": {
            "instrument_family_str": "keyboard",
            "instrument_source_str": "electronic",
            "pitch": 87,
            "velocity": 127,
            "note_str": "keyboard_electronic_000-087-127",
            "instrument_str": "keyboard_electronic_000",
            "qualities_str": ["bright"],
        },
        "synth_lead_synthetic_001-023-050": {
            "instrument_family_str": "synth_lead",
            "instrument_source_str": "synthetic",
            "pitch": 23,
            "velocity": 50,
        },
    }
    write(tmp_path / "nsynth-test" / "examples.json", json.dumps(ex))
    for k in ex:
        write_tone(tmp_path / "nsynth-test" / "audio" / f"{k}.wav")
    answers = {t: [i.answer for i in items("nsynth", tmp_path, t)[0]] for t in ("IC", "ISC", "PP", "VC")}
    assert answers == {
        "IC": ["Keyboard", "Synth lead"],
        "ISC": ["Electronic", "Synthetic"],
        "PP": ["87", "23"],
        "VC": ["127", "50"],
    }
    got, _ = items("nsynth", tmp_path, "IC")
    assert got[0].audio == "nsynth-test/audio/keyboard_electronic_000-087-127.wav" and got[0].split == "test"
    check_labels(got)
    # --root may be one split folder (paths then relative to it), not that folder's audio/
    one, _ = items("nsynth", tmp_path / "nsynth-test", "IC")
    assert [(i.audio, i.split) for i in one] == [(f"audio/{k}.wav", "test") for k in ex]
    none, log = items("nsynth", tmp_path / "nsynth-test" / "audio", "IC")
    assert none == [] and "the folder holding nsynth-<split>/" in log.issues[0].message


def test_speech_commands(tmp_path: Path) -> None:
    write_tone(tmp_path / "two" / "5e3dde6b_nohash_2.wav")
    write_tone(tmp_path / "off" / "d962e5ac_nohash_0.wav")
    write_tone(tmp_path / "_background_noise_" / "white_noise.wav")
    write(tmp_path / "testing_list.txt", "two/5e3dde6b_nohash_2.wav\n")
    write(tmp_path / "validation_list.txt", "")
    got, _ = items("speechcommands", tmp_path, "SCR")
    assert [(i.answer, i.split) for i in got] == [("Off.", "train"), ("Two.", "test")]
    assert got[1].metadata == {"speaker": "5e3dde6b", "split": "test"}
    check_labels(got)


def test_slurp(tmp_path: Path) -> None:
    rec = {
        "slurp_id": 9054,
        "sentence": "event reminder mona tuesday",
        "sentence_annotation": "event reminder [event_name : mona] [date : tuesday]",
        "intent": "calendar_set",
        "recordings": [
            {"file": "audio-1497872916-headset.flac", "wer": 0.0, "ent_wer": 0.0, "status": "correct"},
            {"file": "audio-1497872916.flac", "wer": 0.0, "ent_wer": 0.0, "status": "correct"},
        ],
        "entities": [{"span": [2], "type": "event_name"}, {"span": [3], "type": "date"}],
    }
    plain = {
        "slurp_id": 1,
        "sentence": "lights off",
        "sentence_annotation": "lights off",
        "intent": "iot_hue_lightoff",
        "recordings": [{"file": "audio-1.flac", "wer": 0.0, "ent_wer": None}],
        "entities": [],
    }
    write(
        tmp_path / "dataset" / "slurp" / "test.jsonl",
        json.dumps(rec) + "\n" + json.dumps(plain) + "\nnot json\n",
    )
    write(
        tmp_path / "dataset" / "slurp" / "metadata.json",
        json.dumps({"9054": {"recordings": {"audio-1497872916.flac": {"usrid": "FE-235"}}}}),
    )
    for f in ("audio-1497872916-headset.flac", "audio-1497872916.flac", "audio-1.flac"):
        write_tone(tmp_path / "slurp_real" / f)
    ip, log = items("slurp", tmp_path, "IP")
    assert [i.answer for i in ip] == ["Calendar set", "Calendar set", "Iot hue lightoff"]
    assert ip[1].metadata == {
        "wer": 0.0,
        "ent_wer": 0.0,
        "usrid": "FE-235",
        "sentence": "event reminder mona tuesday",
    }
    assert ip[0].audio == "slurp_real/audio-1497872916-headset.flac"
    assert [i.kind for i in log.issues] == ["malformed"]
    ee, _ = items("slurp", tmp_path, "EE")
    assert [i.answer for i in ee] == ["event reminder [event_name : mona] [date : tuesday]"] * 2
    check_labels(ip)


def test_speechocean762(tmp_path: Path) -> None:
    for split, utt in (("train", "000030012"), ("test", "000030024")):
        write(tmp_path / split / "wav.scp", f"{utt}\tWAVE/SPEAKER0003/{utt}.WAV\n".replace("\t", " "))
        write(tmp_path / split / "text", f"{utt} MARK IS GOING\n")
        write(tmp_path / split / "utt2spk", f"{utt} 0003\n")
        write_tone(tmp_path / "WAVE" / "SPEAKER0003" / f"{utt}.WAV", format="WAV")
    word = {
        "accuracy": 10,
        "stress": 10,
        "total": 10,
        "text": "MARK",
        "phones": ["M"],
        "phones-accuracy": [2.0],
        "mispronunciations": [],
    }
    scores = {
        "000030012": {
            "text": "MARK IS",
            "accuracy": 9,
            "completeness": 10.0,
            "fluency": 9,
            "prosodic": 9,
            "total": 9,
            "words": [word, {**word, "text": "IS", "accuracy": 8, "total": 8}],
        },
    }
    write(tmp_path / "resource" / "scores.json", json.dumps(scores))
    sl, log = items("speechocean762", tmp_path, "PSSL")
    assert [i.answer for i in sl] == [
        "Mark is. For the sentence: accuracy is 9, prosodic is 9, fluency is 9 total score is 9."
    ]
    assert sl[0].audio == "WAVE/SPEAKER0003/000030012.WAV" and sl[0].metadata["speaker"] == "0003"
    assert [i.kind for i in log.issues] == ["malformed"]  # 000030024 has no scores
    wl, _ = items("speechocean", tmp_path, "PSWL")
    assert wl[0].answer == (
        'Mark is. For "mark", accuracy is 10, stress is 10, and total score is 10. '
        'For "is", accuracy is 8, stress is 10, and total score is 8.'
    )
    assert wl[0].metadata["words"][0]["phones"] == ["M"]


def test_manifest(tmp_path: Path) -> None:
    write(
        tmp_path / "labels.tsv",
        "audio\ttask\tanswer\tsource\tspeaker\n"
        "clips/a.wav\tSGC\tMale.\tVCTK\ts1\n"
        "clips/b.wav\tsgc\tRobot\tVCTK\ts2\n"
        "clips/c.wav\tSCR\tYes.\t\t\n",
    )
    got, log = items("manifest", tmp_path / "labels.tsv", "SGC")
    assert len(got) == 1 and got[0].metadata == {"speaker": "s1"} and got[0].source == "VCTK"
    assert got[0].speaker == "s1"
    assert sum(log.skipped.values()) == 1
    adapter = get_adapter("csv")
    assert adapter.served_tasks(tmp_path / "labels.tsv") == ("SGC", "SCR")
    assert adapter.corpus_root(tmp_path / "labels.tsv") == tmp_path


def test_missing_metadata_is_reported_not_raised(tmp_path: Path) -> None:
    for name, a in ADAPTERS.items():
        for t in a.tasks:
            got, log = items(name, tmp_path, t)
            assert got == [], (name, t)
            assert log.issues, (name, t)
