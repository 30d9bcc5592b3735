import pytest

from ntkbook import presets


def test_every_chapter_defines_the_same_keys_in_every_preset():
    for chapter, by_preset in presets.CHAPTERS.items():
        assert set(by_preset) == set(presets.NAMES), chapter
        keys = {name: set(values) for name, values in by_preset.items()}
        assert keys["ci"] == keys["book"] == keys["paper"], (chapter, keys)


def test_values_are_plain_data():
    def plain(v):
        if isinstance(v, (tuple, list)):
            return all(plain(x) for x in v)
        return isinstance(v, (int, float, str, bool)) or v is None

    for chapter, by_preset in presets.CHAPTERS.items():
        for name, values in by_preset.items():
            for key, value in values.items():
                assert plain(value), (chapter, name, key, value)


def test_default_and_environment(monkeypatch):
    monkeypatch.delenv(presets.ENV_VAR, raising=False)
    assert presets.current() == "book"
    monkeypatch.setenv(presets.ENV_VAR, "ci")
    assert presets.current() == "ci"
    cfg = presets.config("01_lazy")
    assert cfg.preset == "ci" and cfg.chapter == "01_lazy"
    assert cfg.init_widths == presets.CHAPTERS["01_lazy"]["ci"]["init_widths"]


def test_ci_is_never_larger_than_book_for_sizes():
    # Spot check of the intent: the ci preset trains fewer steps and networks.
    for chapter, by_preset in presets.CHAPTERS.items():
        for key, ci_value in by_preset["ci"].items():
            book_value = by_preset["book"][key]
            if key.endswith(("steps", "draws", "seeds", "nets", "frames")) and isinstance(ci_value, int):
                assert ci_value <= book_value, (chapter, key)


def test_unknown_names_raise(monkeypatch):
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        presets.config("01_lazy", "huge")
    monkeypatch.setenv(presets.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="NTKBOOK_PRESET"):
        presets.current()
    with pytest.raises(ValueError, match="unknown chapter"):
        presets.config("99_nothing", "ci")


def test_missing_setting_names_chapter_and_alternatives():
    cfg = presets.config("01_lazy", "ci")
    with pytest.raises(AttributeError, match="01_lazy.*no setting 'depth'"):
        cfg.depth
    assert dict(cfg) == presets.CHAPTERS["01_lazy"]["ci"]
