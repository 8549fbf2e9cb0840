"""MinHash signatures and LSH banding, vectorized with numpy.

Near-duplicate documents share most of their *shingles* (word n-grams for
space-delimited languages, character n-grams for Chinese and Japanese, whose
words are not delimited).  The Jaccard similarity of two shingle sets is
estimated by the share of equal positions in two MinHash signatures: for each
of ``num_perm`` hash functions, the minimum hash over the document's shingles.

Everything per document is array arithmetic, no per-shingle Python call:

* the text is normalized (case folded, punctuation to spaces) and turned into a
  codepoint array (``utf-32``);
* each word's hash is a polynomial over its codepoints, summed per word with
  ``np.add.reduceat``; a shingle's hash combines ``n`` consecutive word hashes
  (or ``n`` consecutive codepoints), then goes through the SplitMix64 finalizer
  so its bits are uniform;
* the signature is a *one-permutation* MinHash (:class:`MinHasher`): one sort of
  the document's hashes instead of ``num_perm`` hash functions per shingle.

``bench/dedup.py`` compares the estimates with datasketch's ``MinHash`` on the
same shingles (equal error against the true Jaccard) and the speed.

LSH banding: a signature cut into ``bands`` bands of ``rows`` rows makes two
documents candidates when any band is equal.  Two documents of Jaccard ``s``
become candidates with probability ``P(s) = 1 - (1 - s**rows)**bands``, an
S-curve that rises steeply around ``(1/bands)**(1/rows)``.  :func:`optimal_bands`
picks ``(bands, rows)`` for a target threshold ``t`` by minimising the area of
false positives (``P(s)`` for ``s < t``) plus false negatives (``1 - P(s)`` for
``s >= t``), as datasketch does; :func:`s_curve` prints the curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)

# Odd 64-bit constants for the polynomial hashes (any odd constants with mixed bits will do).
_P_CHAR = np.uint64(0x9E3779B97F4A7C15)
_P_WORD = np.uint64(0xC2B2AE3D27D4EB4F)
_P_BAND = np.uint64(0x165667B19E3779F9)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a bijection of uint64 that spreads every input bit over the output."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


_POWERS: dict[int, np.ndarray] = {}


def _powers(base: int, n: int) -> np.ndarray:
    """``base**i mod 2**64`` for ``i < n`` (cached per base, grown by doubling)."""
    table = _POWERS.get(base)
    if table is None or len(table) < n:
        size = max(64, 1 << max(0, n - 1).bit_length())
        table = np.empty(size, dtype=np.uint64)
        table[0] = 1
        step = np.uint64(base)
        with np.errstate(over="ignore"):
            done = 1
            while done < size:  # doubling: table[done:2*done] = table[:done] * base**done
                chunk = min(done, size - done)
                table[done : done + chunk] = table[:chunk] * step
                step = step * step
                done += chunk
        _POWERS[base] = table
    return table[:n]


@lru_cache(maxsize=1)
def _word_char_table() -> np.ndarray:
    """``table[cp]``: is code point ``cp`` part of a word (letter, digit, mark)?  Astral planes count as letters."""
    import unicodedata

    table = np.ones(0x110000, dtype=bool)
    table[:0x10000] = [unicodedata.category(chr(c))[0] in "LNM" for c in range(0x10000)]
    return table


def _is_cjk_cp(cps: np.ndarray) -> np.ndarray:
    return ((cps >= 0x3040) & (cps <= 0x30FF)) | ((cps >= 0x3400) & (cps <= 0x4DBF)) | ((cps >= 0x4E00) & (cps <= 0x9FFF)) \
        | ((cps >= 0xF900) & (cps <= 0xFAFF)) | ((cps >= 0xAC00) & (cps <= 0xD7AF))


def normalize(text: str) -> str:
    """Lower-cased, every run of characters that are not letters, digits or marks one space."""
    cps = _codepoints(text.lower())
    word = _word_char_table()[cps]
    keep = word | (~word & np.concatenate([[False], word[:-1]]))  # word characters, and one separator after each word
    out = np.where(word, cps, np.uint64(32))[keep].astype(np.uint32)
    return out.tobytes().decode("utf-32-le", "surrogatepass").strip()


def is_cjk(text: str, sample: int = 2000) -> bool:
    """True when CJK characters make up a fifth of the first ``sample`` letters."""
    cps = _codepoints(text[:sample])
    letters = cps[_word_char_table()[cps]]
    return len(letters) > 0 and int(_is_cjk_cp(letters).sum()) * 5 >= len(letters)


def _codepoints(text: str) -> np.ndarray:
    """Code points as uint32 (word characters are never 0: the hashes need no offset)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _window_hash(values: np.ndarray, n: int, base: np.uint64) -> np.ndarray:
    """Hash of every window of ``n`` consecutive values (one window of all values when fewer than ``n``)."""
    n = min(n, len(values))
    m = len(values) - n + 1
    powers = _powers(int(base), n)
    out = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            out += values[j : j + m] * powers[j]
    return splitmix64(out)


_INV_P_CHAR = pow(int(_P_CHAR), -1, 2**64)


def _word_hashes(chars: np.ndarray, word: np.ndarray) -> np.ndarray:
    """One uint64 per run of word characters (``word`` marks them) of a code point array.

    A word's hash is the polynomial ``sum(c[i] * P**(i - start))`` of its code points,
    read off a prefix sum of ``c[i] * P**i`` and shifted back by ``P**-start`` (P is odd,
    so invertible modulo 2**64): a few passes over the text, no per-word work.
    """
    n = len(chars)
    if n == 0 or not word.any():
        return np.zeros(0, dtype=np.uint64)
    # word boundaries alternate: +1 where a word starts, -1 just past its end
    bounds = np.flatnonzero(np.diff(word.view(np.int8), prepend=np.int8(0), append=np.int8(0)))
    starts, ends = bounds[0::2], bounds[1::2]
    with np.errstate(over="ignore"):
        # characters between words need no masking: a word's sum never reaches them
        prefix = np.cumsum(chars.astype(np.uint64) * _powers(int(_P_CHAR), n), dtype=np.uint64)
        total = prefix[ends - 1] - np.where(starts > 0, prefix[starts - 1], np.uint64(0))
        h = total * _powers(_INV_P_CHAR, n)[starts] + (ends - starts).astype(np.uint64) * _P_WORD
    return splitmix64(h)


def word_hashes(text: str) -> np.ndarray:
    """One uint64 per word (run of letters, digits and marks) of the lower-cased text."""
    cps = _codepoints(text.lower())
    return _word_hashes(cps, _word_char_table()[cps])


def shingle_hashes(text: str, word_ngram: int = 5, char_ngram: int = 5) -> np.ndarray:
    """Hashes of the document's shingles: word n-grams, or character n-grams of its letters when a fifth of
    its first 2,000 letters are CJK.  Case, punctuation and spacing do not matter (as in :func:`normalize`).
    One document at a time: batching documents into one array was tried and measured slower (its
    bookkeeping passes cost more than the numpy calls they save; per-document arrays stay in cache)."""
    cps = _codepoints(text.lower())
    word = _word_char_table()[cps]
    letters = cps[word]
    if len(letters) == 0:
        return np.zeros(0, dtype=np.uint64)
    head = letters[:2000]
    if int(_is_cjk_cp(head).sum()) * 5 >= len(head):
        return _window_hash(letters.astype(np.uint64), char_ngram, _P_CHAR)
    return _window_hash(_word_hashes(cps, word), word_ngram, _P_WORD)


@dataclass(frozen=True)
class MinHasher:
    """One-permutation MinHash with ``num_perm`` bins (Li, Owen & Zhang 2012), densified by rotation
    (Shrivastava & Li 2014); signatures are uint32.

    Classic MinHash applies ``num_perm`` hash functions to every shingle: ``num_perm * n``
    multiplications.  One permutation does the same job in ``O(n log n)``: each
    shingle is hashed once (re-keyed by ``seed``), its hash picks one of ``num_perm``
    bins, and a bin's value is its smallest hash.  Two documents agree on a bin with
    probability equal to their Jaccard similarity, like two classic MinHash values,
    and with a little less variance (bins sample without replacement).  An empty
    bin (documents with fewer shingles than bins) borrows the value of the next
    non-empty bin to its right, offset by the distance, so it still agrees exactly
    when the two documents' neighbourhoods do.  ``bench/dedup.py`` shows the
    estimates' error equals datasketch's classic MinHash on the same shingles.
    """

    num_perm: int = 128
    seed: int = 1

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        """The signature of a shingle-hash array (all ``0xFFFFFFFF`` for an empty one)."""
        k = self.num_perm
        if len(shingles) == 0:
            return np.full(k, 0xFFFFFFFF, dtype=np.uint32)
        with np.errstate(over="ignore"):
            h = np.sort(splitmix64(shingles ^ _seed_key(self.seed)))
            # multiply-shift range reduction: monotone in h, so each bin's first element is its minimum
            bins = ((h >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32)
        first = np.searchsorted(bins, np.arange(k, dtype=np.uint64))
        present = first < len(h)
        present[present] = bins[first[present]] == np.flatnonzero(present)
        values = (h[np.minimum(first, len(h) - 1)] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        if present.all():
            return values
        # rotation densification: an empty bin takes its next non-empty neighbour's value, offset by the distance
        full = np.flatnonzero(present)
        nxt = np.searchsorted(full, np.arange(k)) % len(full)
        dist = (full[nxt] - np.arange(k)) % k
        with np.errstate(over="ignore"):
            return values[full[nxt]] + (dist.astype(np.uint32) * np.uint32(0x9E3779B1))

    def signatures(self, shingle_arrays: list[np.ndarray]) -> np.ndarray:
        """Signatures of a batch of documents, ``(len(batch), num_perm)`` uint32."""
        out = np.empty((len(shingle_arrays), self.num_perm), dtype=np.uint32)
        for i, sh in enumerate(shingle_arrays):
            out[i] = self.signature(sh)
        return out


@lru_cache(maxsize=8)
def _seed_key(seed: int) -> np.uint64:
    return splitmix64(np.array([seed], dtype=np.uint64))[0]


def jaccard_estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    return float(np.mean(sig_a == sig_b))


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint64 per band: the band's rows and its index hashed together (equal keys ⇔ equal band)."""
    m = sig[: bands * rows].astype(np.uint64).reshape(bands, rows)
    powers = _powers(int(_P_BAND), rows + 1)
    with np.errstate(over="ignore"):
        h = (m * powers[1:][None, :]).sum(axis=1, dtype=np.uint64) + np.arange(bands, dtype=np.uint64) * powers[0]
        return splitmix64(h ^ (np.arange(bands, dtype=np.uint64) << np.uint64(56)))


def s_curve(s: np.ndarray | float, bands: int, rows: int) -> np.ndarray:
    """Probability that two documents of Jaccard ``s`` share at least one band."""
    return 1.0 - (1.0 - np.asarray(s, dtype=np.float64) ** rows) ** bands


def recall_bands(threshold: float, num_perm: int, recall: float = 0.99) -> tuple[int, int]:
    """``(bands, rows)`` that make pairs of Jaccard ``threshold`` candidates with probability >= ``recall``,
    with as many rows per band as that allows (the fewest low-similarity candidates).  For a stage that
    verifies its candidates: the S-curve's false positives cost a comparison, its false negatives are lost."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        p = threshold**rows
        bands = int(np.ceil(np.log(1.0 - recall) / np.log1p(-p))) if p < 1 else 1
        if bands * rows > num_perm:
            break
        best = (bands, rows)
    return best


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows <= num_perm`` minimising the weighted false-positive and
    false-negative areas under the S-curve around ``threshold``."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    lo = np.linspace(0.0, threshold, 201)
    hi = np.linspace(threshold, 1.0, 201)
    best, best_err = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(s_curve(lo, bands, rows), lo)
            fn = np.trapezoid(1.0 - s_curve(hi, bands, rows), hi)
            err = fp_weight * fp + fn_weight * fn
            if err < best_err - 1e-12:
                best, best_err = (bands, rows), err
    return best
