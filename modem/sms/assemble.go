package sms

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/warthog618/sms/encoding/ucs2"

	"cellagent/modem/clock"
)

// Assembled is a message ready for the inbox: a single PDU, the joined
// parts of a concatenated message, or, after the timeout, the parts that
// did arrive.
type Assembled struct {
	// ID is the part's ID for a single PDU, else a hash over the IDs of
	// the parts present, so re-assembling the same parts gives the same ID.
	ID       string    `json:"id"`
	From     string    `json:"from"`
	SCTS     time.Time `json:"scts"` // of the first part present
	Alphabet Alphabet  `json:"alphabet"`
	Text     string    `json:"text,omitempty"`
	Data     []byte    `json:"data,omitempty"`
	Total    int       `json:"total"`             // parts the message has
	Missing  []int     `json:"missing,omitempty"` // sequence numbers that never came
	Parts    []Message `json:"parts"`             // present parts in sequence order
	// Err is set when a single PDU was undecodable or a joined text
	// would not decode; Parts keep the raw PDUs.
	Err error `json:"-"`
}

// Assembler joins the parts of concatenated messages. It is pure logic
// with an injected clock: the agent persists parts and, after a restart,
// feeds them back to Add with the time they were first received, which
// restores the timeouts too. It is not safe for concurrent use.
type Assembler struct {
	timeout time.Duration
	clock   clock.Clock
	groups  map[groupKey]*group
}

// groupKey identifies one concatenated message. The reference width is
// part of it because an 8-bit and a 16-bit reference with equal values
// are different messages.
type groupKey struct {
	from    string
	ref     int
	refBits int
	total   int
}

type group struct {
	first time.Time // receive time of the earliest part
	parts map[int]Message
}

// NewAssembler returns an assembler that gives up waiting for missing
// parts timeout after the first part of a message arrived, measured on c
// (clock.System when nil).
func NewAssembler(timeout time.Duration, c clock.Clock) *Assembler {
	if c == nil {
		c = clock.System
	}
	return &Assembler{timeout: timeout, clock: c, groups: map[groupKey]*group{}}
}

// Add takes a received message and its receive time. It returns the
// assembled message when m completes one (or stands alone: a single PDU,
// an undecodable PDU or a status report), else ok is false. A part whose
// sequence number is already present is a duplicate and is ignored.
func (a *Assembler) Add(m Message, received time.Time) (msg Assembled, ok bool) {
	c := m.Concat
	if m.Err != nil || m.Kind != Deliver || c == nil || c.Total < 2 || c.Seq < 1 || c.Seq > c.Total {
		// Out-of-range sequence numbers cannot be placed; delivering the
		// part alone keeps it rather than waiting forever.
		return single(m), true
	}
	k := groupKey{from: m.From, ref: c.Ref, refBits: c.RefBits, total: c.Total}
	g := a.groups[k]
	if g == nil {
		g = &group{first: received, parts: map[int]Message{}}
		a.groups[k] = g
	}
	if received.Before(g.first) {
		g.first = received
	}
	if _, dup := g.parts[c.Seq]; dup {
		return Assembled{}, false
	}
	g.parts[c.Seq] = m
	if len(g.parts) < c.Total {
		return Assembled{}, false
	}
	delete(a.groups, k)
	return join(g, c.Total), true
}

// Expire returns the messages whose first part is older than the timeout,
// incomplete, and forgets them.
func (a *Assembler) Expire() []Assembled {
	now := a.clock.Now()
	var out []Assembled
	for k, g := range a.groups {
		if now.Sub(g.first) >= a.timeout {
			out = append(out, join(g, k.total))
			delete(a.groups, k)
		}
	}
	sortAssembled(out)
	return out
}

// Flush returns every message still waiting for parts, incomplete, and
// forgets them; for a one-shot listing that will not wait.
func (a *Assembler) Flush() []Assembled {
	var out []Assembled
	for k, g := range a.groups {
		out = append(out, join(g, k.total))
		delete(a.groups, k)
	}
	sortAssembled(out)
	return out
}

func sortAssembled(s []Assembled) {
	sort.Slice(s, func(i, j int) bool {
		if !s[i].SCTS.Equal(s[j].SCTS) {
			return s[i].SCTS.Before(s[j].SCTS)
		}
		return s[i].ID < s[j].ID
	})
}

func single(m Message) Assembled {
	return Assembled{ID: m.ID, From: m.From, SCTS: m.SCTS, Alphabet: m.Alphabet, Text: m.Text,
		Data: m.Data, Total: 1, Parts: []Message{m}, Err: m.Err}
}

func join(g *group, total int) Assembled {
	seqs := make([]int, 0, len(g.parts))
	for s := range g.parts {
		seqs = append(seqs, s)
	}
	sort.Ints(seqs)
	var out Assembled
	out.Total = total
	h := sha256.New()
	for _, s := range seqs {
		m := g.parts[s]
		out.Parts = append(out.Parts, m)
		h.Write([]byte(m.ID))
	}
	for s := 1; s <= total; s++ {
		if _, ok := g.parts[s]; !ok {
			out.Missing = append(out.Missing, s)
		}
	}
	first := out.Parts[0]
	out.ID = hex.EncodeToString(h.Sum(nil)[:16])
	out.From, out.SCTS, out.Alphabet = first.From, first.SCTS, first.Alphabet
	out.Text, out.Data, out.Err = joinUD(out.Parts, out.Missing == nil)
	return out
}

// joinUD joins the parts' user data. Complete UCS-2 text is decoded as a
// whole, so a surrogate pair split across parts becomes one character
// again; otherwise each part's own text is used.
func joinUD(parts []Message, complete bool) (string, []byte, error) {
	a := parts[0].Alphabet
	if a == Data8 {
		var d []byte
		for _, p := range parts {
			d = append(d, p.Data...)
		}
		return "", d, nil
	}
	if a == UCS2 && complete {
		var ud []byte
		same := true
		for _, p := range parts {
			if p.tpdu == nil || p.Alphabet != UCS2 {
				same = false
				break
			}
			ud = append(ud, p.tpdu.UD...)
		}
		if same {
			r, err := ucs2.Decode(ud)
			if err != nil {
				return string(r), nil, errors.New("sms: joined UCS-2 text ends in half a surrogate pair")
			}
			return string(r), nil, nil
		}
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), nil, nil
}
