"""Call chat building blocks: limits, rate limiting, profanity filter, system messages."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources

import pytest

from rooms.chat import (
    SYSTEM_KINDS,
    ChatError,
    ChatLimits,
    ProfanityFilter,
    RateLimiter,
    prepare_message,
    system_message,
)
from rooms.model import ChatMessage

# --------------------------------------------------------------------------- limits


def test_limits_defaults_and_validation() -> None:
    limits = ChatLimits()
    assert (limits.max_length, limits.rate_messages, limits.rate_window) == (1000, 5, 10.0)
    for bad in ({"max_length": 0}, {"rate_messages": 0}, {"rate_window": 0}):
        with pytest.raises(ValueError):
            ChatLimits(**bad)


def test_prepare_strips_and_keeps_text() -> None:
    assert prepare_message("  Здравствуйте!  \n") == "Здравствуйте!"
    assert prepare_message("a\tb") == "a\tb"  # tabs stay
    assert prepare_message("строка 1\nстрока 2") == "строка 1\nстрока 2"


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t ", "\u200b\u200b", "\x00\x07"])
def test_prepare_empty(text: str) -> None:
    with pytest.raises(ChatError) as info:
        prepare_message(text, ChatLimits())
    assert info.value.code == "empty"


def test_prepare_too_long_says_the_limit() -> None:
    limits = ChatLimits(max_length=10)
    assert prepare_message("  " + "я" * 10 + "  \n", limits) == "я" * 10  # counted after stripping
    with pytest.raises(ChatError) as info:
        prepare_message("я" * 11, limits)
    assert info.value.code == "too_long"
    assert "10" in info.value.message and "11" in info.value.message
    assert info.value.limit == 10
    with pytest.raises(ChatError) as info:
        prepare_message("x" * 1001)  # the default limit
    assert info.value.code == "too_long" and "1000" in info.value.message


def test_prepare_rejects_non_text() -> None:
    with pytest.raises(ChatError) as info:
        prepare_message(None, ChatLimits())
    assert info.value.code == "invalid"


def test_prepare_newlines_and_blank_lines() -> None:
    assert prepare_message("a\r\nb\rc\u2028d") == "a\nb\nc\nd"
    assert prepare_message("a\n\n\nb") == "a\n\n\nb"  # two blank lines stay
    assert prepare_message("a" + "\n" * 10 + "b") == "a\n\n\nb"  # more collapse to two
    assert prepare_message("a   \n  \n \nb") == "a\n\n\nb"  # whitespace-only lines are blank
    assert prepare_message("a  \n  b") == "a\n  b"  # trailing spaces go, indentation stays


def test_prepare_drops_control_and_invisible_characters() -> None:
    assert prepare_message("при\x00вет\x1b[31m") == "привет[31m"
    assert prepare_message("х\u200bу\u2060й\ufeff") == "хуй"  # hiding tricks removed
    assert prepare_message("abc\u202edcba") == "abcdcba"  # bidi override
    assert prepare_message("👨\u200d👩\u200d👧") == "👨\u200d👩\u200d👧"  # ZWJ emoji intact


def test_prepare_normalises_unicode() -> None:
    assert prepare_message("е\u0308лка") == "ёлка"  # NFC
    zalgo = "ж" + "\u0301" * 50  # no precomposed form: all marks stay combining
    assert prepare_message(zalgo) == "ж" + "\u0301" * 4


# --------------------------------------------------------------------------- rate limiter


def test_rate_limiter_allows_n_per_window() -> None:
    rate = RateLimiter(5, 10.0)
    assert [rate.check("p1", t) for t in (0, 1, 2, 3, 4)] == [None] * 5
    wait = rate.check("p1", 4.5)
    assert wait == pytest.approx(5.5)  # the event at 0 expires at 10
    assert rate.check("p1", 9.99) == pytest.approx(0.01)
    assert rate.check("p1", 10.0) is None  # the window is (now - 10, now]


def test_rate_limiter_slides() -> None:
    rate = RateLimiter(2, 10.0)
    assert rate.check("p", 0) is None
    assert rate.check("p", 6) is None
    assert rate.check("p", 9) == pytest.approx(1.0)
    assert rate.check("p", 10) is None  # 0 expired; 6 and 10 in the window
    assert rate.check("p", 15) == pytest.approx(1.0)  # a fixed window would allow this
    assert rate.check("p", 16) is None


def test_rate_limiter_rejections_do_not_count_and_keys_are_separate() -> None:
    rate = RateLimiter(1, 10.0)
    assert rate.check("a", 0) is None
    for t in range(1, 10):
        assert rate.check("a", t) is not None  # spamming does not extend the wait
    assert rate.check("a", 10) is None
    assert rate.check("b", 5) is None


def test_rate_limiter_clock_forget_and_sweep() -> None:
    now = [100.0]
    rate = RateLimiter(1, 5.0, clock=lambda: now[0])
    assert rate.check("a") is None
    assert rate.check("a") == pytest.approx(5.0)
    now[0] += 5
    assert rate.check("a") is None
    rate.forget("a")
    assert rate.check("a") is None
    for i in range(2000):  # idle keys are swept away
        rate.check(f"k{i}", now[0] + i * 10)
    assert len(rate) < 1100
    with pytest.raises(ValueError):
        RateLimiter(0, 1)
    limits = ChatLimits(rate_messages=3, rate_window=2)
    built = RateLimiter.for_limits(limits)
    assert (built.max_events, built.window) == (3, 2.0)


# --------------------------------------------------------------------------- profanity


@pytest.fixture(scope="module")
def pf() -> ProfanityFilter:
    return ProfanityFilter.default()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("сука", "с***"),
        ("Блядь", "Б****"),
        ("бля", "б**"),
        ("ХУЙ", "Х**"),
        ("нахуй", "н****"),
        ("похуй", "п****"),
        ("охуеть", "о*****"),
        ("хуёвый", "х*****"),
        ("пиздец", "п*****"),
        ("распиздяй", "р********"),
        ("спиздил", "с******"),
        ("ебать", "е****"),
        ("ёбаный", "ё*****"),
        ("заебал", "з*****"),
        ("выёбываться", "в**********"),
        ("съебался", "с*******"),
        ("уёбок", "у****"),
        ("долбоёб", "д******"),
        ("мудак", "м****"),
        ("пидорас", "п******"),
        ("ублюдок", "у******"),
        ("гондон", "г*****"),
        ("шлюха", "ш****"),
    ],
)
def test_masks_russian(pf: ProfanityFilter, text: str, masked: str) -> None:
    assert pf.filter(text) == (masked, True)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("fuck", "f***"),
        ("Motherfucker", "M***********"),
        ("shit", "s***"),
        ("bullshit", "b*******"),
        ("bitches", "b******"),
        ("asshole", "a******"),
        ("ass", "a**"),
        ("cunt", "c***"),
        ("wanker", "w*****"),
        ("blyat", "b****"),  # Russian in Latin letters
        ("suka", "s***"),
    ],
)
def test_masks_english(pf: ProfanityFilter, text: str, masked: str) -> None:
    assert pf.filter(text) == (masked, True)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("сууука", "с*****"),  # repeated letters
        ("FUUUUCK", "F******"),
        ("xyй", "x**"),  # Latin x, y
        ("XYE", "X**"),  # all Latin look-alikes
        ("cyka", "c***"),
        ("e6aть", "e****"),  # digit 6 for б
        ("пiздец", "п*****"),  # Latin/Ukrainian i
        ("fuсk", "f***"),  # Cyrillic с in an English word
        ("sh1t", "s***"),
        ("a$$hole", "a******"),
        ("х.у.й", "х.*.*"),  # separators between letters
        ("х-у-й", "х-*-*"),
        ("б*л*я*д*ь", "б********"),
        ("f.u.c.k", "f.*.*.*"),
        ("с у к а", "с * * *"),  # spaced out
        ("ху́й", "х***"),  # a stress mark
        ("по-хуй", "по-х**"),  # only the offending part of a hyphenated word
    ],
)
def test_masks_obfuscated(pf: ProfanityFilter, text: str, masked: str) -> None:
    assert pf.filter(text) == (masked, True)


def test_case_and_yo(pf: ProfanityFilter) -> None:
    for text in ("ЁБАНЫЙ", "Ёбаный", "ёбаный", "ебаный", "ЕбАнЫй"):
        masked, found = pf.filter(text)
        assert found and masked == text[0] + "*" * 5
    assert pf.filter("ЁЛКА")[1] is False


# An ordinary lesson's words, and words that contain (or look like) a listed stem.
LESSON_WORDS = """
урок учитель учительница ученик ученица класс классный домашнее задание тетрадь учебник
учебный учёба дневник расписание перемена звонок доска мел карандаш ручка линейка
портфель пенал контрольная самостоятельная оценка пятёрка четвёрка экзамен четверть
каникулы директор завуч математика алгебра геометрия физика химия биология история
география литература информатика музыка физкультура уравнение дробь сложение вычитание
умножение деление задача пример ответ вопрос правило упражнение диктант сочинение
изложение параграф страница глагол существительное прилагательное наречие местоимение
причастие деепричастие предложение подлежащее сказуемое ребята пожалуйста спасибо
здравствуйте извините повторите слышно видно микрофон камера презентация
""".split()
TRICKY_WORDS = """
употреблять употребление потребление потребитель колебля колеблется колебаться скипидар
оскорблять оскорбление рубля корабля сабля стебля тебя себя тебе себе небо небу неба
небеса хлеб хлебать расхлебать учебник ребёнок требовать победа обед гребля гребень
дебаты дебош надебоширил подебелее застрахую застрахуй подстрахуй страхуешь страхует
сукно сук сучок сучья мандарин мандат команда командир херес Херсон бляшка бляха
мудрый мудрость похудеть ухудшить психология Хуанхэ трахея хулиган Скунторп Эссекс
педикюр гондола срам сравнение странный страна сразу
Scunthorpe Essex Sussex class assess assignment bass passing cocktail peacock Dickens
Moby Dick shiitake Shiite who're Hui Eban niggardly analysis therapist document Fukushima
""".split()


@pytest.mark.parametrize("word", LESSON_WORDS + TRICKY_WORDS)
def test_no_false_positives(pf: ProfanityFilter, word: str) -> None:
    assert pf.filter(word) == (word, False)
    assert pf.filter(word.upper()) == (word.upper(), False)


def test_enough_ordinary_words_are_checked() -> None:
    assert len(LESSON_WORDS) >= 40 and len(TRICKY_WORDS) >= 40


def test_ordinary_lesson_text_is_untouched(pf: ProfanityFilter) -> None:
    text = (
        "Ребята, откройте учебник на странице 42, упражнение 5. "
        "Не забудьте: контрольная по алгебре в четверг!\n"
        "Пример: 3 + 4 = 7; т.е. всё просто. Е-mail учителя: anna.petrovna@school.ru, "
        "сайт https://school.ru/5a/dz?id=17. Кто-нибудь по-русски ответит? а у я и в о с к"
    )
    assert pf.filter(text) == (text, False)


def test_masking_keeps_the_rest_exactly(pf: ProfanityFilter) -> None:
    text = "  Ну\u00a0ты,\tсука!!! 😀\n\n(блядь) — «хуйня»…fuck? ok  "
    masked, found = pf.filter(text)
    assert found
    assert masked == "  Ну\u00a0ты,\tс***!!! 😀\n\n(б****) — «х****»…f***? ok  "
    assert len(masked) == len(text)
    assert masked.encode() == text.encode().replace("ука".encode(), b"***").replace(
        "лядь".encode(), b"****"
    ).replace("уйня".encode(), b"****").replace(b"uck", b"***")


def test_clean_text_is_returned_as_is(pf: ProfanityFilter) -> None:
    text = "Всё понятно, спасибо! 👍"
    masked, found = pf.filter(text)
    assert masked is text and found is False


def test_find_reports_spans(pf: ProfanityFilter) -> None:
    text = "ну бля, опять"
    assert pf.find(text) == [(3, 6)]
    assert pf.is_offensive("бля") and not pf.is_offensive("опять")


# --------------------------------------------------------------------------- configuration


def test_custom_entries_only() -> None:
    pf = ProfanityFilter(["капуста", "морков*", "*свекл*", "banana"])
    assert pf.filter("капуста, морковка и сахарносвекловичный banana")[0] == (
        "к******, м******* и с****************** b*****"
    )
    assert pf.filter("капустный")[1] is False  # whole word only
    assert pf.filter("сука")[1] is False  # no shipped lists


def test_word_list_file_and_exceptions(tmp_path) -> None:
    path = tmp_path / "school.txt"
    path.write_text("# local additions\n\nдурак*   # insults\n!дурака\nлох\n", encoding="utf-8")
    pf = ProfanityFilter(files=[path], allow=["дураков"])
    assert pf.filter("дурак лох") == ("д**** л**", True)
    assert pf.filter("дурака дураков")[1] is False  # exceptions by "!" and by allow=
    assert pf.filter("лохматый")[1] is False


def test_prefix_marker() -> None:
    plain = ProfanityFilter(["хрен*"])
    prefixed = ProfanityFilter(["+хрен*"])
    assert plain.filter("похрен")[1] is False
    assert prefixed.filter("похрен") == ("п*****", True)
    assert prefixed.filter("нахрена") == ("н******", True)
    assert prefixed.filter("шахрен")[1] is False  # "ша" is not a prefix
    # A consonant prefix needs ъ before a vowel: "под" + "ебош..." is дебош.
    assert ProfanityFilter(["+ебо*"]).filter("подебоширить")[1] is False
    assert ProfanityFilter(["+ебо*"]).filter("подъебон")[1] is True


def test_allowlist_overrides_shipped_lists() -> None:
    pf = ProfanityFilter.default(allow=["хуанхуй"], entries=["редиска"])
    assert pf.filter("хуанхуй")[1] is False
    assert pf.filter("редиска")[1] is True
    assert pf.filter("хуй")[1] is True


@pytest.mark.parametrize("bad", ["ab-c", "xуй", "+fuck", "*", "!+хуй"])
def test_invalid_entries(bad: str) -> None:
    with pytest.raises(ValueError):
        ProfanityFilter([bad])


def test_default_lists_load() -> None:
    folder = resources.files("rooms") / "wordlists"
    for name in ("ru.txt", "en.txt"):
        assert (folder / name).is_file()
    pf = ProfanityFilter.default()
    assert pf is ProfanityFilter.default()  # loaded once
    assert pf.size > 100
    assert ProfanityFilter(defaults=True).filter("сука fuck") == ("с*** f***", True)


# --------------------------------------------------------------------------- system messages

AT = datetime(2026, 11, 24, 9, 1, 2, tzinfo=UTC)
IVAN = {"name": "Иван Иванов", "participant_id": "p_2"}


@pytest.mark.parametrize(
    ("kind", "data", "text"),
    [
        ("waiting", IVAN, "Иван Иванов ждёт в зале ожидания"),
        ("joined", IVAN, "Иван Иванов входит в урок"),
        ("left", IVAN, "Иван Иванов выходит из урока"),
        ("recording_ready", {}, "Запись урока готова"),
        ("recording_ready", {"title": " Алгебра,\n 7А ", "url": "/recordings/rec_1/file"},
         "Запись «Алгебра, 7А» готова"),
        ("recording_failed", {"title": "Алгебра"}, "Запись «Алгебра» не удалась"),
        ("recording_failed", {}, "Запись урока не удалась"),
        ("breakout_opened", {}, "Открыты комнаты для работы в группах"),
        ("breakout_opened", {"count": 4, "minutes": 10},
         "Открыты комнаты для работы в группах (4) на 10 мин."),
        ("breakout_closed", {},
         "Комнаты для работы в группах закрыты, все возвращаются в общий урок"),
    ],
)  # fmt: skip
def test_system_messages(kind: str, data: dict, text: str) -> None:
    message = system_message(kind, data, AT)
    assert message.kind == "system" and message.id == ""
    assert message.text == text
    assert message.data == {**data, "event": kind}
    assert message.author_id is None and message.author_role is None and message.at == AT
    assert "event" not in data  # the caller's dict is not changed
    assert ChatMessage.from_json(message.to_json()) == message


def test_system_message_kinds() -> None:
    assert set(SYSTEM_KINDS) == {
        "waiting", "joined", "left", "recording_ready", "recording_failed", "breakout_opened",
        "breakout_closed",
    }  # fmt: skip
    with pytest.raises(ValueError):
        system_message("exploded", {}, AT)
    assert system_message("joined", {}, AT).text == "Участник входит в урок"
    assert system_message("joined", {"name": " Аня\n Петрова "}, AT).text == (
        "Аня Петрова входит в урок"
    )
