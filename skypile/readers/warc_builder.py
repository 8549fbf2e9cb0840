"""Build WARC.gz files from HTML pages, for tests, demos and benchmarks.

Two sources:

* :func:`build_warc_from_shared` packs the ~625 real pages of ``../shared/data``
  (trafilatura-eval, CleanEval, GNE, cleaneval-zh) as HTTP ``response`` records,
  with their original bytes.  The HTTP ``Content-Type`` carries a charset only
  when the dataset states one (CleanEval's ``encoding=`` attribute), so
  undeclared GBK pages exercise charset detection as they would in a crawl.
* :func:`build_default_warc` writes a small WARC from pages written here, so the
  pipeline has an input when the shared data is absent: English and Chinese
  articles, a navigation-only page, a GBK page, an undeclared Big5 page, a PNG,
  an empty page and a 404.

Records are written with FastWARC (one gzip member per record, as Common Crawl
does) to a temporary name and renamed into place.  IDs and dates are derived
from the URL, so a rebuild produces the same bytes.
"""

from __future__ import annotations

import gzip
import io
import uuid
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

from fastwarc.warc import WarcRecord, WarcRecordType

from skypile.io import atomic_output

WARC_DATE = "2024-05-01T12:00:00Z"
HTTP_DATE = "Wed, 01 May 2024 12:00:00 GMT"
_NS = uuid.UUID("5b4f1f40-2a7e-4d1c-9a43-3c1f7f9e0a11")


@dataclass(frozen=True)
class Page:
    """One HTTP response to store: body bytes exactly as served."""

    url: str
    body: bytes
    content_type: str = "text/html"
    charset: str = ""  # sent in the HTTP Content-Type only when non-empty
    status: int = 200
    origin: str = ""  # provenance, stored as the WARC header X-SkyPile-Origin


_REASONS = {200: "OK", 301: "Moved Permanently", 404: "Not Found", 500: "Internal Server Error"}


def _http_message(page: Page) -> bytes:
    ctype = f"{page.content_type}; charset={page.charset}" if page.charset else page.content_type
    head = (
        f"HTTP/1.1 {page.status} {_REASONS.get(page.status, 'Status')}\r\n"
        f"Date: {HTTP_DATE}\r\n"
        "Server: nginx/1.24.0\r\n"
        f"Content-Type: {ctype}\r\n"
        f"Content-Length: {len(page.body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + page.body


def _record(rtype: WarcRecordType, key: str, block: bytes, headers: dict[str, str], is_http: bool) -> bytes:
    rec = WarcRecord()
    rec.init_headers(record_type=rtype, record_urn=f"uuid:{uuid.uuid5(_NS, key)}".encode())
    rec.headers["WARC-Date"] = WARC_DATE
    for k, v in headers.items():
        rec.headers[k] = v
    rec.set_bytes_content(block)
    if is_http:
        rec.is_http = True
    else:
        rec.headers["Content-Type"] = "application/warc-fields"
    buf = io.BytesIO()
    rec.write(buf, checksum_data=True)
    return gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)


def write_warc(out: BinaryIO, pages: Iterable[Page], description: str) -> int:
    """Write a warcinfo record then one response record per page; returns the number of pages."""
    info = f"software: skypile warc_builder\r\nformat: WARC File Format 1.1\r\ndescription: {description}\r\n"
    out.write(_record(WarcRecordType.warcinfo, "warcinfo:" + description, info.encode(), {}, False))
    n = 0
    for i, page in enumerate(pages):
        headers = {"WARC-Target-URI": page.url}
        if page.origin:
            headers["X-SkyPile-Origin"] = page.origin
        out.write(_record(WarcRecordType.response, f"{i}:{page.url}", _http_message(page), headers, True))
        n += 1
    return n


def shared_pages(limit: int | None = None) -> Iterator[Page]:
    """The real HTML pages under ``../shared/data`` in a fixed order (English first, then Chinese)."""
    from skypile.evaluation.extraction import (
        load_cleaneval_en,
        load_cleaneval_zh,
        load_gne_pages,
        load_trafilatura_eval,
    )

    loaders = (
        ("html-en/trafilatura-eval", load_trafilatura_eval),
        ("html-en/cleaneval", load_cleaneval_en),
        ("html-zh/gne", load_gne_pages),
        ("html-zh/cleaneval-zh", load_cleaneval_zh),
    )
    n = 0
    for origin, load in loaders:
        for gp in load():
            if limit is not None and n >= limit:
                return
            yield Page(url=gp.url, body=gp.html, charset=gp.charset, origin=f"{origin}/{gp.name}")
            n += 1


def build_warc_from_shared(out_path: str, limit: int | None = None) -> int:
    """Pack the shared real pages (all, or the first ``limit``) into ``out_path``; returns the page count."""
    with atomic_output(out_path) as out:
        return write_warc(out, shared_pages(limit), "real pages from ../shared/data (html-en, html-zh)")


def build_default_warc(out_path: str) -> int:
    """Write the bundled sample WARC (see :func:`default_pages`); returns the page count."""
    with atomic_output(out_path) as out:
        return write_warc(out, default_pages(), "skypile bundled sample pages")


def _html(title: str, paragraphs: list[str], lang: str, meta_charset: str = "") -> str:
    """A plausible article page: site navigation and footer around the main text."""
    meta = f'<meta charset="{meta_charset}">' if meta_charset else ""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head>{meta}<title>{title}</title></head>\n<body>\n'
        '<header><nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>'
        '<li><a href="/about">About</a></li><li><a href="/contact">Contact</a></li></ul></nav></header>\n'
        f"<main><article><h1>{title}</h1>\n{body}\n</article></main>\n"
        '<footer><p>&copy; 2024 Example Media. All rights reserved.</p><p><a href="/privacy">Privacy</a> | '
        '<a href="/terms">Terms</a></p></footer>\n</body></html>\n'
    )


_EN_ARTICLES = [
    (
        "What a community garden does to a city block",
        [
            "When the vacant lot at the corner of Fifth and Alder was fenced off three years ago, most neighbours "
            "assumed another apartment building would follow. Instead, a group of residents asked the city for a "
            "temporary lease and started planting. Today the lot holds forty raised beds, a tool shed built from "
            "salvaged doors and a compost system that takes in food scraps from two nearby cafes.",
            "The change is not only visual. People who had lived on the same street for a decade without speaking "
            "now share watering schedules and swap seedlings in the spring. Older residents teach younger ones how "
            "to prune tomatoes, and children who had never seen a bean grow now argue about whose plant is taller.",
            "Researchers who study urban green spaces point out that gardens like this one also cool the surrounding "
            "pavement on hot afternoons and absorb rain that would otherwise rush into overloaded storm drains. "
            "The effect of a single lot is small, but a network of them across a district can be measured.",
            "The lease runs out next year, and the organisers are collecting signatures to make the garden "
            "permanent. Whatever the council decides, they say the real harvest has been the neighbourhood itself.",
        ],
    ),
    (
        "Why bread goes stale, and how to slow it down",
        [
            "Stale bread is not simply dry bread. A loaf left on the counter loses some moisture, but the main "
            "reason it turns hard is that the starch inside it slowly recrystallises. When dough is baked, the "
            "starch granules absorb water and swell into a soft gel; as the loaf cools over the following days, "
            "the long starch molecules line up again and squeeze that water out of the gel.",
            "This process, called retrogradation, runs fastest at temperatures just above freezing. That is why "
            "bread kept in the refrigerator often goes stale sooner than bread kept in a bread box at room "
            "temperature, even though the cold slows the growth of mould.",
            "Freezing stops the process almost completely, so slicing a fresh loaf and freezing what you will not "
            "eat in two days keeps it close to its original texture. A short spell in a hot oven can also reverse "
            "some of the damage, because heat melts the new crystals and softens the crumb again for a while.",
        ],
    ),
    (
        "A beginner's guide to exploring tide pools",
        [
            "Tide pools form where the sea retreats at low tide and leaves water trapped in hollows of rock. The "
            "animals that live there have to survive hours of warm sun, changing salt levels and waves that return "
            "twice a day, which makes the pools some of the most interesting small habitats on any coast.",
            "The best time to visit is during the lowest tides of the month, which usually fall around the new and "
            "full moon. Check a tide table before you go, arrive an hour before low tide and keep an eye on the "
            "water as it turns, because an incoming tide can cut off a path back to the beach surprisingly quickly.",
            "Walk on bare rock rather than on seaweed or mussel beds, and look before you touch. If you lift a "
            "stone to see what lives underneath, put it back exactly as you found it, since the crabs and worms "
            "sheltering below depend on that shade. Leave shells and animals where they are for the next visitor.",
        ],
    ),
]

_ZH_ARTICLES = [
    (
        "城市骑行的第三个春天",
        [
            "三年前，市里在老城区划出了第一条连续的自行车道。当时不少人担心道路会更加拥堵，商户也抱怨停车位减少会影响生意。"
            "如今回头看，这条车道每天早晚都有上千人骑车经过，沿线的小店反而因为来往的行人和骑车人变多而更加热闹。",
            "交通部门的统计显示，车道开通以后，这一片区的短途出行中骑车的比例提高了将近一倍。很多上班族说，"
            "过去开车十分钟的路程常常要堵上半个小时，现在骑车二十分钟就能稳稳到达，还顺便锻炼了身体。",
            "当然，问题也依然存在。部分路口的信号灯没有为自行车单独设置相位，电动车和自行车混行也让一些骑车人感到紧张。"
            "市民在座谈会上建议增加隔离护栏，并在学校周边设置更明显的提示标志。相关部门表示，明年将把车道延伸到新城区。",
        ],
    ),
    (
        "一杯茶里的四季",
        [
            "在南方的山村里，采茶是跟着节气走的。清明前后，茶树刚刚抽出嫩芽，村里的老人天不亮就背着竹篓上山，"
            "趁着露水未干把最嫩的芽尖一颗一颗掐下来。这时候的茶叶数量最少，味道却最鲜，被称为明前茶。",
            "采回来的鲜叶要先摊开晾一晾，再放进铁锅里杀青。炒茶的师傅用手在滚烫的锅里不停地翻动，"
            "火候全凭多年的经验，稍微大一点茶叶就会发焦，小一点又会留下青草气。一锅茶要炒上二十多分钟，"
            "等叶子变软、香气出来，才能起锅揉捻。",
            "到了夏天和秋天，茶叶长得粗壮，味道也更浓，村里人多半留着自己喝。冬天茶树休养，家家户户围着火炉，"
            "泡上一壶去年的老茶，聊一聊来年的打算。对他们来说，一杯茶里装着的正是一年的四季。",
        ],
    ),
]

_GBK_ARTICLE = (
    "社区图书馆的新变化",
    [
        "位于老街口的社区图书馆最近完成了改造。原来狭小的阅览室被打通，增加了三十多个座位，还专门开辟了儿童阅读区。"
        "每到周末，不少家长带着孩子来这里看书，馆里的志愿者也会定期举办读书会和手工课。",
        "图书馆负责人介绍，今年新增图书两千多册，其中很大一部分是居民推荐的书目。馆里还和区图书馆实现了通借通还，"
        "居民在家门口就能借到全区的藏书。不少老人说，退休以后有了这样一个安静的去处，生活充实了许多。",
    ],
)

_BIG5_ARTICLE = (
    "老街上的手工麵店",
    [
        "在這條老街上，有一家開了三十多年的手工麵店。每天清晨，老闆都會親自和麵、揉麵，再用竹竿反覆壓製，"
        "讓麵條更有彈性。他說，這門手藝是從父親那裡學來的，雖然辛苦，但看到客人吃得滿意，一切都值得。",
        "店裡的湯頭用大骨熬上一整夜，配上自家醃製的酸菜，吸引了不少外地遊客專程前來。最近幾年，"
        "老闆的兒子也回到店裡幫忙，開始在網路上介紹麵店的故事，讓更多年輕人認識這份傳統的味道。",
    ],
)

# Smallest valid PNG: 1x1 transparent pixel.
_PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def default_pages() -> list[Page]:
    """The bundled sample: 3 English and 2 Chinese UTF-8 articles, GBK, Big5, nav-only, PNG, empty, 404."""
    base = "http://sample.skypile.test"
    pages = []
    for i, (title, paras) in enumerate(_EN_ARTICLES):
        pages.append(Page(f"{base}/en/article-{i + 1}.html", _html(title, paras, "en").encode(), charset="utf-8"))
    title, paras = _ZH_ARTICLES[0]
    pages.append(Page(f"{base}/zh/cycling.html", _html(title, paras, "zh-CN").encode(), charset="utf-8"))
    title, paras = _ZH_ARTICLES[1]  # charset only in <meta>
    pages.append(Page(f"{base}/zh/tea.html", _html(title, paras, "zh-CN", "utf-8").encode("utf-8")))
    title, paras = _GBK_ARTICLE  # GBK bytes, declared as gb2312 in <meta>, nothing in HTTP
    pages.append(Page(f"{base}/zh/library-gbk.html", _html(title, paras, "zh-CN", "gb2312").encode("gbk")))
    title, paras = _BIG5_ARTICLE  # Big5 bytes, declared nowhere: detection must find it
    pages.append(Page(f"{base}/zh-tw/noodles-big5.html", _html(title, paras, "zh-TW").encode("big5")))
    nav = "".join(f'<li><a href="/c/{i}">Category {i}</a></li>' for i in range(1, 40))
    nav_page = (
        '<!DOCTYPE html><html lang="en"><head><title>Site map</title></head><body>'
        f"<nav><ul>{nav}</ul></nav><footer>Contact us: info@example.com | Tel: +1 555 010 0199</footer></body></html>"
    )
    pages.append(Page(f"{base}/sitemap.html", nav_page.encode(), charset="utf-8"))
    pages.append(Page(f"{base}/logo.png", _PNG_1X1, content_type="image/png"))
    pages.append(Page(f"{base}/empty.html", b"", charset="utf-8"))
    pages.append(Page(f"{base}/missing.html", b"<html><body>Not Found</body></html>", status=404))
    return pages
