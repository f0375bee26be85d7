// Package tencent holds Tencent Cloud Live's wire formats: callback payloads, the REST API
// client and UserSig. Decoding is lenient where Tencent's documentation and payloads
// disagree (numbers for strings, integer seat modes) and strict where correctness depends
// on it (JSON only, the command word, the RoomId).
package tencent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// FlexString is a string that Tencent sometimes sends as a JSON number
// (Owner_Account, Member_Account: "144115216631667826" or 144115216631667826).
type FlexString string

// UnmarshalJSON accepts a string, a number (kept digit for digit) or null.
func (s *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*s = ""
	case b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = FlexString(v)
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*s = FlexString(n.String())
	default:
		return fmt.Errorf("expected a string or a number, got %.20s", b)
	}
	return nil
}

// FlexBool is a bool that may arrive as true/false, "true"/"false" or 0/1.
type FlexBool bool

// UnmarshalJSON accepts a bool, a boolean string or 0/1.
func (v *FlexBool) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	switch s {
	case "true", "1":
		*v = true
	case "false", "0", "", "null":
		*v = false
	default:
		return fmt.Errorf("expected a boolean, got %.20s", b)
	}
	return nil
}

// FlexInt is an integer that may arrive as a number or a numeric string.
type FlexInt int64

// UnmarshalJSON accepts an integer, a numeric string or null.
func (v *FlexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// Integral values written as floats (1.7e12) still count.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return fmt.Errorf("expected an integer, got %.20s", b)
		}
		n = int64(f)
	}
	*v = FlexInt(n)
	return nil
}

// Seat modes as Tencent spells them.
const (
	SeatModeNone        = "None"
	SeatModeFreeToTake  = "FreeToTake"
	SeatModeApplyToTake = "ApplyToTake"
)

// TakeSeatMode is a seat mode that older API versions send as 1 (free) or 2 (apply).
type TakeSeatMode string

// UnmarshalJSON accepts the mode names and the integers 0, 1 and 2.
func (m *TakeSeatMode) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	switch s {
	case "", "null":
		*m = ""
	case "0", SeatModeNone:
		*m = SeatModeNone
	case "1", SeatModeFreeToTake:
		*m = SeatModeFreeToTake
	case "2", SeatModeApplyToTake:
		*m = SeatModeApplyToTake
	default:
		return fmt.Errorf("unknown TakeSeatMode %.30s", b)
	}
	return nil
}

// RoomInfo is a room's settings as callbacks and the REST API carry them. Pointer fields
// tell a field that was sent from one that was not, so partial updates change only what
// they carry.
type RoomInfo struct {
	RoomID            FlexString   `json:"RoomId,omitempty"`
	RoomName          *string      `json:"RoomName,omitempty"`
	RoomType          string       `json:"RoomType,omitempty"`
	OwnerAccount      FlexString   `json:"Owner_Account,omitempty"`
	MaxMemberCount    *FlexInt     `json:"MaxMemberCount,omitempty"`
	IsMessageDisabled *FlexBool    `json:"IsMessageDisabled,omitempty"`
	CustomInfo        *string      `json:"CustomInfo,omitempty"`
	IsSeatEnabled     *FlexBool    `json:"IsSeatEnabled,omitempty"`
	TakeSeatMode      TakeSeatMode `json:"TakeSeatMode,omitempty"`
	MaxSeatCount      *FlexInt     `json:"MaxSeatCount,omitempty"`
	CreateTime        FlexInt      `json:"CreateTime,omitempty"`
	IsPublicVisible   *FlexBool    `json:"IsPublicVisible,omitempty"`
	CoverURL          *string      `json:"CoverURL,omitempty"`
	BackgroundURL     *string      `json:"BackgroundURL,omitempty"`
	Notice            *string      `json:"Notice,omitempty"`
	Category          []FlexInt    `json:"Category,omitempty"`
	ActivityStatus    *FlexInt     `json:"ActivityStatus,omitempty"`
	ViewCount         FlexInt      `json:"ViewCount,omitempty"`
}

// Statistic is the final room statistics of a destroy callback.
type Statistic struct {
	TotalViewers           FlexInt `json:"TotalViewers"`
	TotalGiftsSent         FlexInt `json:"TotalGiftsSent"`
	TotalGiftCoins         FlexInt `json:"TotalGiftCoins"`
	TotalUniqueGiftSenders FlexInt `json:"TotalUniqueGiftSenders"`
	TotalLikesReceived     FlexInt `json:"TotalLikesReceived"`
}

// Member is one entry of a member-state callback's MemberList.
type Member struct {
	Account FlexString `json:"Member_Account"`
}

// Seat is one entry of a seat callback's SeatList; Account is empty for a free seat.
type Seat struct {
	Index           FlexInt    `json:"Index"`
	Account         FlexString `json:"Member_Account"`
	IsTakenDisabled FlexBool   `json:"IsTakenDisabled"`
	IsVideoDisabled FlexBool   `json:"IsVideoDisabled"`
	IsAudioDisabled FlexBool   `json:"IsAudioDisabled"`
}

// MetadataEntry is one key of a room's metadata and its value.
type MetadataEntry struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}
