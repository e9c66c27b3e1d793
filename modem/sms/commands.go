package sms

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"cellagent/modem/at"
)

// Commander is the part of the AT engine this package uses; *at.AT
// implements it.
type Commander interface {
	Command(ctx context.Context, cmd string, opts ...at.CommandOption) ([]string, error)
	SMSCommand(ctx context.Context, cmd, body string, opts ...at.CommandOption) ([]string, error)
}

// Send submits the parts in order with AT+CMGS and returns the message
// reference the network gave each. It stops at the first failure with a
// *SendError that carries the references of the parts already accepted;
// resending from that part keeps the reassembled message whole, because
// every part keeps its concatenation reference.
func Send(ctx context.Context, c Commander, pdus ...PDU) ([]int, error) {
	mrs := make([]int, 0, len(pdus))
	for i, p := range pdus {
		mr, err := sendOne(ctx, c, p)
		if err != nil {
			se := &SendError{Part: i + 1, Parts: len(pdus), MRs: mrs, Code: -1, Class: ClassOf(err), Err: err}
			var cms *at.CMSError
			if errors.As(err, &cms) {
				se.Code = cms.Code
			}
			return mrs, se
		}
		mrs = append(mrs, mr)
	}
	return mrs, nil
}

func sendOne(ctx context.Context, c Commander, p PDU) (int, error) {
	if p.Length <= 0 || p.Hex == "" {
		return 0, fmt.Errorf("sms: empty PDU")
	}
	info, err := c.SMSCommand(ctx, fmt.Sprintf("AT+CMGS=%d", p.Length), p.Hex)
	if err != nil {
		return 0, err
	}
	for _, l := range info {
		if rest, ok := strings.CutPrefix(l, "+CMGS:"); ok {
			// "+CMGS: <mr>[,<scts>]"
			f, _, _ := strings.Cut(rest, ",")
			mr, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || mr < 0 || mr > 255 {
				return 0, fmt.Errorf("sms: AT+CMGS: bad reference in %q", l)
			}
			return mr, nil
		}
	}
	return 0, fmt.Errorf("sms: AT+CMGS: OK without +CMGS: <mr> (got %q)", info)
}

// Stat is the storage status of AT+CMGL and AT+CMGR in PDU mode.
type Stat int

// The <stat> values of TS 27.005 §3.1; NoStat marks an answer that left
// it out (a ZTE modem prints "+CMGR: ,,27").
const (
	NoStat    Stat = -1
	RecUnread Stat = 0
	RecRead   Stat = 1
	StoUnsent Stat = 2
	StoSent   Stat = 3
	All       Stat = 4
)

func (s Stat) String() string {
	switch s {
	case RecUnread:
		return "REC UNREAD"
	case RecRead:
		return "REC READ"
	case StoUnsent:
		return "STO UNSENT"
	case StoSent:
		return "STO SENT"
	case All:
		return "ALL"
	case NoStat:
		return "-"
	}
	return fmt.Sprintf("stat %d", int(s))
}

// Entry is one stored message.
type Entry struct {
	Index int  `json:"index"`
	Stat  Stat `json:"stat"`
	Message
}

// List reads the stored messages with AT+CMGL=<stat>. Reading marks
// unread messages read; nothing is deleted.
func List(ctx context.Context, c Commander, stat Stat) ([]Entry, error) {
	if stat < RecUnread || stat > All {
		return nil, fmt.Errorf("sms: list: stat %d out of range 0-4", int(stat))
	}
	info, err := c.Command(ctx, fmt.Sprintf("AT+CMGL=%d", stat))
	if err != nil {
		return nil, fmt.Errorf("sms: list: %w", err)
	}
	return ParseCMGL(info)
}

// Delete deletes the slot index with AT+CMGD=<index>.
func Delete(ctx context.Context, c Commander, index int) error {
	if index < 0 {
		return fmt.Errorf("sms: delete: negative index %d", index)
	}
	if _, err := c.Command(ctx, fmt.Sprintf("AT+CMGD=%d", index)); err != nil {
		return fmt.Errorf("sms: delete %d: %w", index, err)
	}
	return nil
}

// DeleteAll empties the preferred memory with AT+CMGD=0,4, read or not.
func DeleteAll(ctx context.Context, c Commander) error {
	if _, err := c.Command(ctx, "AT+CMGD=0,4"); err != nil {
		return fmt.Errorf("sms: delete all: %w", err)
	}
	return nil
}
