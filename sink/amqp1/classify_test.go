package amqp1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	amqp "github.com/Azure/go-amqp"
)

func TestClassifyRejected(t *testing.T) {
	cases := []struct {
		err       *amqp.Error
		reason    string
		permanent bool
	}{
		{nil, ReasonRejected, true},
		{&amqp.Error{Condition: amqp.ErrCondDecodeError}, ReasonRejected, true},
		{&amqp.Error{Condition: amqp.ErrCondInvalidField}, ReasonRejected, true},
		{&amqp.Error{Condition: amqp.ErrCondNotAllowed}, ReasonRejected, true},
		{&amqp.Error{Condition: "vendor:something"}, ReasonRejected, true},
		{&amqp.Error{Condition: amqp.ErrCondMessageSizeExceeded}, ReasonTooLarge, true},
		{&amqp.Error{Condition: amqp.ErrCondResourceLimitExceeded}, ReasonResourceLimit, false},
		{&amqp.Error{Condition: "com.microsoft:server-busy"}, ReasonResourceLimit, false},
		{&amqp.Error{Condition: amqp.ErrCondUnauthorizedAccess}, ReasonAuth, false},
		{&amqp.Error{Condition: amqp.ErrCondInternalError}, ReasonBroker, false},
		{&amqp.Error{Condition: amqp.ErrCondNotFound}, ReasonUnknownAddress, false},
		{&amqp.Error{Condition: "failed", Description: "AMQ119002: target address x does not exist"}, ReasonUnknownAddress, false},
		{&amqp.Error{Condition: "failed", Description: "AMQ229000: journal failure"}, ReasonBroker, false},
	}
	for _, c := range cases {
		got := classifyRejected(c.err)
		if got.reason != c.reason || got.permanent != c.permanent {
			t.Errorf("Rejected %v: %s permanent=%v, want %s permanent=%v", c.err, got.reason, got.permanent, c.reason, c.permanent)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err       error
		reason    string
		scope     scope
		permanent bool
	}{
		{ErrClosed, ReasonClosed, scopeConn, false},
		{fmt.Errorf("x: %w", context.Canceled), ReasonCanceled, scopeMessage, false},
		{context.DeadlineExceeded, ReasonTimeout, scopeConn, false},
		{errors.New("SASL PLAIN auth failed with code 0x1: "), ReasonAuth, scopeConn, false},
		{&amqp.LinkError{RemoteErr: &amqp.Error{Condition: amqp.ErrCondDetachForced}}, ReasonDetached, scopeLink, false},
		{&amqp.LinkError{}, ReasonDetached, scopeLink, false},
		{&amqp.ConnError{RemoteErr: &amqp.Error{Condition: amqp.ErrCondConnectionForced}}, ReasonNetwork, scopeConn, false},
		{&amqp.ConnError{}, ReasonNetwork, scopeConn, false},
		{&amqp.SessionError{}, ReasonDetached, scopeConn, false},
		{&amqp.Error{Condition: amqp.ErrCondNotFound}, ReasonUnknownAddress, scopeLink, false},
		{&amqp.Error{Condition: amqp.ErrCondUnauthorizedAccess}, ReasonAuth, scopeLink, false},
		{&amqp.Error{Condition: amqp.ErrCondMessageSizeExceeded}, ReasonTooLarge, scopeMessage, true},
		{errors.New(`amqp: sender settlement mode "unsettled" requested, received "mixed" from server`), ReasonSettleMode, scopeLink, false},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), ReasonNetwork, scopeConn, false},
		{io.EOF, ReasonNetwork, scopeConn, false},
		{errors.New("something new"), ReasonOther, scopeConn, false},
	}
	for _, c := range cases {
		got := classify(c.err)
		if got.reason != c.reason || got.scope != c.scope || got.permanent != c.permanent {
			t.Errorf("%v: %+v, want reason %s scope %d permanent %v", c.err, got, c.reason, c.scope, c.permanent)
		}
	}
}

func TestTidy(t *testing.T) {
	e := &amqp.Error{Condition: amqp.ErrCondNotFound, Description: "AMQ119002: target address x does not exist"}
	for _, c := range []struct {
		err  error
		want string
	}{
		{e, "amqp:not-found: AMQ119002: target address x does not exist"},
		{&amqp.LinkError{RemoteErr: &amqp.Error{Condition: amqp.ErrCondDetachForced}}, "link detached by the broker: amqp:link:detach-forced"},
		{io.EOF, "EOF"},
	} {
		got := tidy(c.err)
		if got.Error() != c.want || !errors.Is(got, c.err) {
			t.Errorf("tidy(%v) = %q, want %q wrapping the original", c.err, got, c.want)
		}
		if classify(got) != classify(c.err) {
			t.Errorf("tidy changes the class of %v", c.err)
		}
	}
}
