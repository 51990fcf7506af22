package mask

import "unicode/utf8"

// text is what the matchers read: a body as bytes, or a log value as a string,
// without copying one into the other.
type text interface{ ~string | ~[]byte }

// link is how a digit is joined to the digit before it.
type link uint8

const (
	chainStart     link = iota // to nothing: it starts a chain
	sameRun                    // it follows it directly
	afterSeparator             // one to three separators come between
	afterDots                  // one to three dots and nothing else come between
)

// digit is one digit the finder has read: where it is, its value, and its link.
type digit struct {
	start int
	size  uint8
	val   uint8
	link  link
}

// ringSize is how many digits the finder remembers. A decision at the end of a
// run reads at most 31 digits back (an ID card's 18 and a mobile number's 15
// before its first three), so older digits never matter again.
const ringSize = 32

// finder walks a text once, left to right, and yields the digits to star so that
// no mobile number (and, with idCard, no ID-card number) is left in it, as
// internal/leakcheck defines them: a run of digits, or consecutive runs of a chain,
// spelling 1[3-9] and nine more digits, perhaps after 86 or 0086. It needs no
// memory beyond its ring: zero allocations.
//
// It decides at the end of every run. When a number ends there, its 4th to 7th
// national digits are starred ("138 **** 5678"). Stars split runs, and what stars
// leave can complete a number that was not there before: in "13812345 1391234
// 5678" starring 1234 leaves "13812345 139", eleven digits. Pieces after the stars
// are seen as the walk goes on; the piece a starring leaves in front of it is
// checked at once, and starred whole when it completes a number, which leaves no
// new piece behind. So the text that comes out has no number in it, whatever came
// in (FuzzMaskText), and the stars of each decision come after all earlier ones,
// so they can be written as they are found.
type finder[T text] struct {
	s              T
	i              int  // next byte to read
	join           link // how the digit at i continues the chain; chainStart: it does not
	mobile, idCard bool

	ring     [ringSize]digit
	n        int // digits read so far; digit k is ring[k%ringSize]
	chain    int // the first digit of the current chain
	lastStar int // the last digit starred, -1 before any

	from, to int // digits decided on but not yet yielded

	// The span find yielded: s[a:b], which holds stars digits, all to be starred.
	a, b, stars int
}

func (f *finder[T]) reset(s T, mobile, idCard bool) {
	f.s, f.i, f.join = s, 0, chainStart
	f.mobile, f.idCard = mobile, idCard
	f.n, f.chain, f.lastStar = 0, 0, -1
	f.from, f.to = 0, 0
}

// at is digit k.
func (f *finder[T]) at(k int) *digit { return &f.ring[uint(k)%ringSize] }

// find yields the next span to star, in order, merging adjacent digits; false
// when there are no more.
func (f *finder[T]) find() bool {
	for f.from == f.to {
		if !f.run() {
			return false
		}
	}
	d := f.at(f.from)
	f.a, f.b, f.stars = d.start, d.start+int(d.size), 1
	for f.from++; f.from < f.to; f.from++ {
		d := f.at(f.from)
		if d.start != f.b {
			break
		}
		f.b += int(d.size)
		f.stars++
	}
	return true
}

// run reads runs of digits until a decision at the end of one stars some; false
// at the end of the text. The walk's state stays in locals between runs, as most
// runs need no decision.
func (f *finder[T]) run() bool {
	s, i, l := f.s, f.i, f.join
	n, chain, ring := f.n, f.chain, &f.ring
	for {
		if l == chainStart {
			for {
				for i < len(s) && !digitLead[s[i]] {
					i++
				}
				if i >= len(s) {
					f.i, f.n, f.chain, f.join = i, n, chain, chainStart
					return false
				}
				if isDigit(s[i]) {
					if escapedHex(s, i) {
						i += 2 // the hex digits of %HH or \xHH: not digits of a number
						continue
					}
					break
				}
				if s[i] == '\\' && i+6 <= len(s) && s[i+1] == 'u' {
					// A \u escape of a character in a block without digits, as
					// most are (\u5f20), is stepped over without decoding.
					h1, h2, h3, h4 := hexVal[s[i+2]], hexVal[s[i+3]], hexVal[s[i+4]], hexVal[s[i+5]]
					if b := h1<<4 | h2; h1|h2|h3|h4 >= 0 && !ndBlocks[b] && (b < 0xD8 || b > 0xDF) {
						i += 6
						continue
					}
				}
				isDigit, size := digitAt(s, i)
				if isDigit {
					break
				}
				i += size
			}
			chain = n
		}
		first := n
		for i < len(s) {
			if c := s[i]; isDigit(c) {
				ring[uint(n)%ringSize] = digit{start: i, size: 1, val: c - '0', link: l}
				i++
			} else {
				if !digitLead[c] {
					break
				}
				k, v, size := charAt(s, i)
				if k != digitChar {
					break
				}
				ring[uint(n)%ringSize] = digit{start: i, size: uint8(size), val: v, link: l}
				i += size
			}
			n++
			l = sameRun
		}
		end := i
		// One to three separators and a digit carry the chain on.
		next := afterDots
		for seps := 0; ; seps++ {
			if i >= len(s) || seps > 3 {
				next = chainStart
				break
			}
			k, size := separator, 1
			switch c := s[i]; {
			case c == '.':
				k = dot
			case c == ' ' || c == '-' || c == '\t':
			case isDigit(c):
				k = digitChar
			case c < utf8.RuneSelf && c != '\\', c >= utf8.RuneSelf && !decodeLead[c]:
				k = other
			default:
				k, _, size = charAt(s, i)
			}
			if k == digitChar {
				break
			}
			if k == separator {
				next = afterSeparator
			} else if k != dot {
				next = chainStart
				break
			}
			i += size
		}
		l = next
		if n-chain < 11 { // fewer digits hold no number
			continue
		}
		f.i, f.n, f.chain, f.join = i, n, chain, l
		f.decide(first, n-1, end)
		if f.from != f.to {
			return true
		}
	}
}

// decide looks at the run of digits first..last, which ends at s[end].
func (f *finder[T]) decide(first, last, end int) {
	if f.idCard {
		if a, b, ok := f.idCardAt(first, last, end); ok {
			// The first three digits now end a piece, which may complete a mobile
			// number with the runs before it.
			if f.mobile && f.numberEndsAt(first+2) {
				a = first
			}
			f.mark(a, b)
			return
		}
	}
	if !f.mobile || !f.numberEndsAt(last) {
		return
	}
	a := last - 7
	if f.at(a).link == sameRun && f.numberEndsAt(a-1) {
		// Star the piece in front too, back to where it starts: it lies inside this
		// number, so at most seven digits.
		for a--; f.at(a).link == sameRun && a-1 > f.lastStar; a-- {
		}
	}
	f.mark(a, last-3)
}

// mark decides to star digits a..b-1, which come after every digit starred so far.
func (f *finder[T]) mark(a, b int) {
	f.from, f.to, f.lastStar = a, b, b-1
}

func (f *finder[T]) val(k int) uint8 { return f.at(k).val }

// pieceStart reports whether digit k, which is not starred, starts a piece: no
// unstarred digit of its run comes right before it.
func (f *finder[T]) pieceStart(k int) bool {
	return f.at(k).link != sameRun || k-1 == f.lastStar
}

// numberEndsAt reports whether digit e ends a mobile number: e ends a piece, and
// the eleven digits up to it, with 86 or 0086 before them or not, have no star
// among them, start a piece, and are joined by dots only as phones are grouped.
func (f *finder[T]) numberEndsAt(e int) bool {
	s := e - 10
	if s < f.chain || s <= f.lastStar || f.val(s) != 1 || f.val(s+1) < 3 || !f.groupedByDots(s) {
		return false
	}
	if f.pieceStart(s) {
		return true
	}
	if s-2 < f.chain || s-2 <= f.lastStar || f.val(s-2) != 8 || f.val(s-1) != 6 || f.at(s-1).link == afterDots {
		return false
	}
	if f.pieceStart(s - 2) {
		return true
	}
	return s-4 >= f.chain && s-4 > f.lastStar && f.val(s-4) == 0 && f.val(s-3) == 0 &&
		f.at(s-3).link != afterDots && f.at(s-2).link != afterDots && f.pieceStart(s-4)
}

// groupedByDots reports whether dots join the eleven digits from s only after
// the third and the seventh, as a phone is grouped: "138.1234.5678", where
// "13:45:15.253444101" and "1700000000.5" are not phones.
func (f *finder[T]) groupedByDots(s int) bool {
	for k := s + 1; k <= s+10; k++ {
		if f.at(k).link == afterDots && k != s+3 && k != s+7 {
			return false
		}
	}
	return true
}

// escapedHex reports whether the ASCII digit at s[i] is the first hex digit of a
// %HH or \xHH escape ("%E4%B8%8913812345678" is 张 and then a number, not the run
// 8913812345678): the two are read as one other character, as leakcheck reads them.
func escapedHex[T text](s T, i int) bool {
	if i+1 >= len(s) || hexVal[s[i+1]] < 0 {
		return false
	}
	return i >= 1 && s[i-1] == '%' || i >= 2 && s[i-2] == '\\' && s[i-1] == 'x'
}
