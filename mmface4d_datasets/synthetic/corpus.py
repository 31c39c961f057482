"""A Mandarin reading corpus shaped like the MMFace4D one.

Sentence ids have six digits: a two-digit emotion prefix (00 neutral, 21 happy, 22 angry,
23 sad, 24 surprise, 25 fear, 26 disgust, as in the authors' release) and a four-digit number
starting at 0001 within the emotion, e.g. ``000017`` or ``240003``.

The texts are our own: phrase templates and word lists written for this module, combined
deterministically (the corpus does not depend on the generation seed, as a printed prompt
book would not). Lengths run from two-character replies to two-clause sentences of about 34
characters, so that eSpeak NG's Mandarin at the speaking rates we use lasts between about 0.7 s
and 11 s (the paper's sentence durations run 0.7 to 11.4 s).

:func:`draw_sentences` gives an actor a balanced draw: the emotions take turns in a seeded
order, so the counts of two emotions differ by at most one.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from mmface4d_datasets.vocabulary import EMOTION_NAMES, EMOTION_OF_PREFIX, PREFIX_OF_EMOTION

#: Emotion name of each sentence-id prefix (DESIGN.md, the record's `emotion`; defined in
#: :mod:`mmface4d_datasets.vocabulary`), and the emotions in ClassLabel order.
EMOTION_PREFIXES = EMOTION_OF_PREFIX
EMOTIONS = EMOTION_NAMES

#: Bumped whenever a text or an id of the corpus changes.
CORPUS_VERSION = "1"

#: Longest text in characters (punctuation included); keeps the slowest voice under 11.4 s.
MAX_TEXT_CHARS = 34


@dataclass(frozen=True)
class Sentence:
    """One prompt of the corpus: ``sentence_id`` (six digits), ``emotion`` (from the prefix), Mandarin ``text``."""

    sentence_id: str
    emotion: str
    text: str


# ---- word lists (our own) ---------------------------------------------------------------

_PEOPLE = ("我", "他", "她", "我们", "老师", "小王", "妈妈", "爸爸", "同学们", "我的朋友", "邻居", "张医生")
_TIMES = ("今天", "明天早上", "昨天下午", "这个周末", "每天晚上", "上个月", "下周一", "刚才")
_ACTIVITIES = (
    "去图书馆看书",
    "在公园散步",
    "坐地铁上班",
    "买了一些水果",
    "学习一门新的语言",
    "打扫房间",
    "做了一顿晚饭",
    "给家里打电话",
    "参加一个会议",
    "骑自行车去学校",
    "写了一封信",
    "看新闻",
    "在河边钓鱼",
    "整理书架",
    "去银行办事",
    "练习弹钢琴",
)
_AFTERWARDS = (
    "然后回家休息",
    "顺便去超市买东西",
    "因为天气很好",
    "路上的人不多",
    "回来以后喝了杯茶",
    "一直忙到中午",
    "觉得时间过得很快",
    "还带了一把雨伞",
)
_SHORT_NEUTRAL = (
    "好的。",
    "知道了。",
    "没问题。",
    "请稍等。",
    "谢谢你。",
    "再见。",
    "可以。",
    "明白了。",
    "请进。",
    "早上好。",
    "下午见。",
    "我在家里。",
)
_HAPPY_EVENTS = (
    "我们赢了比赛",
    "终于放假了",
    "收到了你的礼物",
    "考试全部通过了",
    "找到了新工作",
    "见到了老朋友",
    "搬进了新房子",
    "今天的演出很成功",
    "孩子学会走路了",
    "这次旅行太开心了",
)
_HAPPY_OPENERS = ("太好了！", "真开心！", "哈哈，", "好消息！")
_HAPPY_SHORT = ("太棒了！", "真好！", "好开心！", "太好了！", "真不错！")
_ANGRY_ACTS = (
    "把我的东西弄坏",
    "迟到这么久",
    "说话不算数",
    "在这里大声吵闹",
    "乱扔垃圾",
    "不接我的电话",
    "随便动我的电脑",
    "把事情搞砸",
)
_ANGRY_THINGS = ("这种态度", "这些借口", "无休止的等待", "你的谎话", "这里的噪音", "这样的安排")
_ANGRY_SHORT = ("够了！", "闭嘴！", "太过分了！", "走开！", "别烦我！")
_SAD_EVENTS = (
    "我的小狗走丢了",
    "朋友要搬到很远的地方",
    "爷爷生病住院了",
    "我们的计划失败了",
    "她没有来送别",
    "那家老店关门了",
    "我把奶奶的信弄丢了",
    "这次比赛输了",
)
_SAD_ENDINGS = ("我心里很难过", "我一整天都不想说话", "眼泪一直流下来", "我觉得好孤单")
_SAD_SHORT = ("唉。", "好难过。", "算了吧。", "我好累。", "对不起。")
_SURPRISE_EVENTS = (
    "你已经回来了",
    "他们结婚了",
    "这道题这么简单",
    "外面下雪了",
    "门票全卖完了",
    "他居然会做饭",
    "我们中了大奖",
    "她一个人跑完了全程",
)
_SURPRISE_OPENERS = ("什么？", "真的吗？", "天哪，", "不会吧，")
_SURPRISE_SHORT = ("真的吗？", "什么？", "天哪！", "不会吧！", "哇！")
_FEAR_THINGS = (
    "外面好像有人",
    "楼道里的灯突然灭了",
    "我听见奇怪的声音",
    "电梯停在半空中",
    "水越来越深了",
    "那条狗一直跟着我",
    "窗户被风吹开了",
    "山路上起了大雾",
)
_FEAR_ENDINGS = ("我好害怕", "快点离开这里", "请不要丢下我", "我的心跳得好快")
_FEAR_SHORT = ("救命！", "好可怕！", "快跑！", "别过来！", "我怕。")
_DISGUST_THINGS = (
    "这碗汤",
    "这个房间",
    "垃圾桶旁边",
    "他的袜子",
    "这块肉",
    "冰箱里的剩菜",
    "这条小河",
    "桌子上的东西",
)
_DISGUST_QUALITIES = ("太臭了", "太恶心了", "又脏又乱", "已经发霉了", "让人想吐")
_DISGUST_SHORT = ("恶心！", "真脏！", "好臭！", "讨厌！", "呸！")


def _candidates(emotion: str) -> list[str]:
    """Every text the templates of one emotion can make (short ones first), before selection."""
    if emotion == "neutral":
        one_clause = [f"{t}{p}{a}。" for t, p, a in itertools.product(_TIMES, _PEOPLE, _ACTIVITIES)]
        two_clause = [f"{t}{p}{a}，{b}。" for t, p, a, b in itertools.product(_TIMES, _PEOPLE, _ACTIVITIES, _AFTERWARDS)]
        three_clause = [
            f"{p}{t}{a}，{b}，{c}。"
            for p, t, a, b, c in itertools.product(_PEOPLE, _TIMES, _ACTIVITIES, _AFTERWARDS, _AFTERWARDS)
            if b != c
        ]
        return list(_SHORT_NEUTRAL) + one_clause + two_clause + three_clause
    if emotion == "happy":
        return (
            list(_HAPPY_SHORT)
            + [f"{o}{e}！" for o, e in itertools.product(_HAPPY_OPENERS, _HAPPY_EVENTS)]
            + [f"{o}{p}{e}，我们今天晚上好好庆祝一下！" for o, p, e in itertools.product(_HAPPY_OPENERS, _PEOPLE, _HAPPY_EVENTS)]
        )
    if emotion == "angry":
        return (
            list(_ANGRY_SHORT)
            + [f"你怎么又{a}？" for a in _ANGRY_ACTS]
            + [f"别再{a}了！" for a in _ANGRY_ACTS]
            + [f"我真的受够了{t}！" for t in _ANGRY_THINGS]
            + [f"{p}又{a}，我真的受够了{t}！" for p, a, t in itertools.product(_PEOPLE[1:], _ANGRY_ACTS, _ANGRY_THINGS)]
        )
    if emotion == "sad":
        return (
            list(_SAD_SHORT)
            + [f"{e}。" for e in _SAD_EVENTS]
            + [f"{e}，{s}。" for e, s in itertools.product(_SAD_EVENTS, _SAD_ENDINGS)]
            + [f"{t}{e}，{s}，什么都做不下去。" for t, e, s in itertools.product(_TIMES, _SAD_EVENTS, _SAD_ENDINGS)]
        )
    if emotion == "surprise":
        return (
            list(_SURPRISE_SHORT)
            + [f"{o}{e}？" for o, e in itertools.product(_SURPRISE_OPENERS, _SURPRISE_EVENTS)]
            + [f"{o}{t}{e}？我完全没有想到！" for o, t, e in itertools.product(_SURPRISE_OPENERS, _TIMES, _SURPRISE_EVENTS)]
        )
    if emotion == "fear":
        return (
            list(_FEAR_SHORT)
            + [f"{t}，{e}。" for t, e in itertools.product(_FEAR_THINGS, _FEAR_ENDINGS)]
            + [f"{w}{t}，{e}，我们快点回家吧。" for w, t, e in itertools.product(_TIMES, _FEAR_THINGS, _FEAR_ENDINGS)]
        )
    if emotion == "disgust":
        return (
            list(_DISGUST_SHORT)
            + [f"{t}{q}。" for t, q in itertools.product(_DISGUST_THINGS, _DISGUST_QUALITIES)]
            + [f"{t}{q}，我一口都不想碰，赶紧拿走吧。" for t, q in itertools.product(_DISGUST_THINGS, _DISGUST_QUALITIES)]
        )
    raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTIONS}")


_LENGTH_BANDS = ((7, 12), (13, 18), (19, 24), (25, MAX_TEXT_CHARS))

#: Sentences per emotion: the neutral set is larger, as in the paper's prompt book.
SENTENCES_PER_EMOTION = {"neutral": 120, "happy": 50, "angry": 50, "sad": 50, "surprise": 50, "fear": 50, "disgust": 50}


@functools.cache
def mandarin_corpus() -> tuple[Sentence, ...]:
    """The whole corpus (420 sentences), the same on every call and machine.

    For each emotion, the short replies (up to six characters) come first, then a fixed
    pseudo-random selection (a NumPy generator with a constant seed) of the longer template
    sentences, taken in turns from four length bands (7-12, 13-18, 19-24, 25-34 characters) so that
    every length is represented; texts are unique and at most :data:`MAX_TEXT_CHARS` characters.
    """
    sentences = []
    for emotion_number, emotion in enumerate(EMOTIONS):
        texts = [t for t in dict.fromkeys(_candidates(emotion)) if len(t) <= MAX_TEXT_CHARS]
        chosen = [t for t in texts if len(t) <= 6]
        rng = np.random.default_rng([20231, emotion_number])  # constant: the corpus is fixed, not seeded
        bands = [[t for t in texts if low <= len(t) <= high] for low, high in _LENGTH_BANDS]
        bands = [[band[i] for i in rng.permutation(len(band))] for band in bands if band]
        picked = []
        while len(chosen) + len(picked) < SENTENCES_PER_EMOTION[emotion] and any(bands):
            for band in bands:
                if band and len(chosen) + len(picked) < SENTENCES_PER_EMOTION[emotion]:
                    picked.append(band.pop())
        chosen += sorted(picked, key=lambda t: (len(t), t))
        prefix = PREFIX_OF_EMOTION[emotion]
        sentences.extend(Sentence(f"{prefix}{number:04d}", emotion, text) for number, text in enumerate(chosen, start=1))
    return tuple(sentences)


def sentences_by_emotion() -> dict[str, tuple[Sentence, ...]]:
    """The corpus grouped by emotion, in :data:`EMOTIONS` order."""
    corpus = mandarin_corpus()
    return {emotion: tuple(s for s in corpus if s.emotion == emotion) for emotion in EMOTIONS}


def emotion_of_sentence_id(sentence_id: str) -> str:
    """The emotion carried by a six-digit sentence id's two-digit prefix; ValueError for an unknown prefix."""
    if len(sentence_id) != 6 or not (sentence_id.isascii() and sentence_id.isdigit()):
        raise ValueError(f"sentence id {sentence_id!r} is not six digits")
    try:
        return EMOTION_PREFIXES[sentence_id[:2]]
    except KeyError:
        raise ValueError(
            f"sentence id {sentence_id!r} has unknown emotion prefix {sentence_id[:2]!r}; known: {sorted(EMOTION_PREFIXES)}"
        ) from None


def draw_sentences(count: int, rng: np.random.Generator) -> list[Sentence]:
    """A balanced draw of ``count`` sentences for one actor.

    The seven emotions take turns in an order shuffled by ``rng``; within an emotion, sentences come
    in a shuffled order without repetition until that emotion's list is used up (then a fresh
    shuffle begins). So any two emotions' counts differ by at most one, and an actor reads a
    sentence twice only when ``count`` exceeds seven times the smallest emotion list.
    """
    if count < 0:
        raise ValueError(f"cannot draw {count} sentences")
    groups = sentences_by_emotion()
    order = [EMOTIONS[i] for i in rng.permutation(len(EMOTIONS))]
    queues: dict[str, list[Sentence]] = {emotion: [] for emotion in EMOTIONS}
    drawn = []
    for turn in range(count):
        emotion = order[turn % len(order)]
        if not queues[emotion]:
            group = groups[emotion]
            queues[emotion] = [group[i] for i in rng.permutation(len(group))]
        drawn.append(queues[emotion].pop())
    return drawn
