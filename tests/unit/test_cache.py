from wren.engine.cache import CompletionCache


def test_typing_through_the_suggestion() -> None:
    cache = CompletionCache()
    cache.remember("u", "x = compute(", ")", "values, 3")
    assert cache.lookup("u", "x = compute(val", ")") == "ues, 3"
    assert cache.lookup("u", "x = compute(values, 3", ")") is None  # fully typed


def test_never_stale_after_an_edit_around_the_cursor() -> None:
    cache = CompletionCache()
    cache.remember("u", "x = compute(", ")", "values, 3")
    assert cache.lookup("u", "x = compute(z", ")") is None  # typed something else
    assert cache.lookup("u", "x = compute(v", "), 4") is None  # the rest of the line changed
    assert cache.lookup("u", "y = compute(v", ")") is None  # edited before the cursor


def test_lru_returns_to_a_completed_place_and_is_bounded() -> None:
    cache = CompletionCache(max_entries=3)
    for i in range(5):
        cache.remember("u", f"line{i} = ", "", f"value{i}")
    assert len(cache) == 3
    assert cache.lookup("v", "line4 = ", "") == "value4"
    assert cache.lookup("v", "line0 = ", "") is None


def test_find_says_which_layer_answered() -> None:
    cache = CompletionCache()
    cache.remember("u", "x = compute(", ")", "values, 3")
    assert cache.find("u", "x = compute(", ")") == ("values, 3", "seen here before")
    assert cache.find("u", "x = compute(va", ")") == ("lues, 3", "typed through")


def test_clear_forgets_everything() -> None:
    cache = CompletionCache()
    cache.remember("u", "x = ", "", "1")
    cache.clear()
    assert len(cache) == 0 and cache.find("u", "x = ", "") is None
