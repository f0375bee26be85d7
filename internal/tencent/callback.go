package tencent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Callback commands the operator acts on.
const (
	CommandCreateRoom         = "Live.CallbackAfterCreateRoom"
	CommandDestroyRoom        = "Live.CallbackAfterDestroyRoom"
	CommandUpdateRoomInfo     = "Live.CallbackAfterUpdateRoomInfo"
	CommandSeatInfoChanged    = "Mic.CallbackAfterSeatInfoChanged"
	CommandChangeOwner        = "Live.CallbackAfterChangeOwner"
	CommandModifyAdmin        = "Live.CallbackAfterModifyAdmin"
	CommandMemberStateChanged = "Live.CallbackAfterMemberStateChanged"
	// commandMemberStateChangedAlias is the spelling one of Tencent's pages gives.
	commandMemberStateChangedAlias = "Live.CallbackMemberStateChanged"
)

// Limits from Tencent's documentation that a room must respect to be stored.
const (
	MaxRoomIDBytes     = 48
	MaxRoomNameBytes   = 100
	MaxURLBytes        = 200
	MaxNoticeBytes     = 100
	MaxCustomInfoBytes = 2048
	MaxUserIDBytes     = 32
	MaxCategories      = 3
	// MaxSeats and MaxAdmins are the LiveRoom CRD's bounds on status.seats and
	// status.admins; a seat Index is stored as an int32.
	MaxSeats     = 256
	MaxAdmins    = 256
	MaxSeatIndex = math.MaxInt32
	// MaxEventMillis and MaxCreateSeconds are the end of year 9999, the last instant a
	// Kubernetes timestamp can hold.
	MaxEventMillis   = 253402300799999
	MaxCreateSeconds = MaxEventMillis / 1000
)

// CanonicalCommand maps the documented spellings of a command to one.
func CanonicalCommand(c string) string {
	if c == commandMemberStateChangedAlias {
		return CommandMemberStateChanged
	}
	return c
}

// IsRoomCommand reports whether the operator applies the command to a LiveRoom.
func IsRoomCommand(c string) bool {
	switch CanonicalCommand(c) {
	case CommandCreateRoom, CommandDestroyRoom, CommandUpdateRoomInfo, CommandSeatInfoChanged,
		CommandChangeOwner, CommandModifyAdmin, CommandMemberStateChanged,
		CommandSetMetadata, CommandDelMetadata:
		return true
	}
	return false
}

// IsHandled reports whether the operator acts on the command: the room commands and the
// app's room quota warning.
func IsHandled(c string) bool {
	return IsRoomCommand(c) || CanonicalCommand(c) == CommandCreateRoomReachingThreshold
}

// Callback is any Live room callback body; each command fills its own fields.
type Callback struct {
	Command         string     `json:"CallbackCommand"`
	OperatorAccount FlexString `json:"Operator_Account,omitempty"`
	// RoomID is top-level in every room callback but create and update, which carry it
	// in RoomInfo; use Room().
	RoomID    FlexString `json:"RoomId,omitempty"`
	EventTime FlexInt    `json:"EventTime,omitempty"` // milliseconds
	EventType string     `json:"EventType,omitempty"`
	// EventCause is Enter, Leave, HeartbeatInterrupt or HeartbeatRecover.
	EventCause string     `json:"EventCause,omitempty"`
	RoomInfo   *RoomInfo  `json:"RoomInfo,omitempty"`
	Statistic  *Statistic `json:"Statistic,omitempty"`
	MemberList []Member   `json:"MemberList,omitempty"`
	SeatList   []Seat     `json:"SeatList,omitempty"`

	CurrentOwnerAccount  FlexString   `json:"CurrentOwner_Account,omitempty"`
	OriginalOwnerAccount FlexString   `json:"OriginalOwner_Account,omitempty"`
	AdminAccounts        []FlexString `json:"Admin_Account,omitempty"`
	// AdminOp is "add" or "delete" (Tencent spells the key opType).
	AdminOp string `json:"opType,omitempty"`

	// Metadata is what a set-metadata callback set, Keys what a del-metadata one deleted.
	Metadata []MetadataEntry `json:"Metadata,omitempty"`
	Keys     []string        `json:"Keys,omitempty"`

	// CurRoomCount and MaxRoomCount are the app's rooms and its quota when Tencent warns
	// that the app nears the quota.
	CurRoomCount FlexInt `json:"CurRoomCount,omitempty"`
	MaxRoomCount FlexInt `json:"MaxRoomCount,omitempty"`
}

// Room is the RoomId the callback is about.
func (c *Callback) Room() string {
	if c.RoomID != "" {
		return string(c.RoomID)
	}
	if c.RoomInfo != nil {
		return string(c.RoomInfo.RoomID)
	}
	return ""
}

// DecodeError says why a callback body was refused; Reason is a short metric label.
type DecodeError struct {
	Reason string
	Err    error
}

func (e *DecodeError) Error() string { return e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// Decode reasons.
const (
	ReasonNotJSON         = "not_json"
	ReasonCommandMismatch = "command_mismatch"
	ReasonInvalidRoom     = "invalid_room"
	ReasonInvalidQuota    = "invalid_quota"
)

func decodeErr(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Decode parses a callback body and checks it against the query's CallbackCommand. For
// room commands it also checks the RoomId and the documented limits, so that everything
// it accepts can be stored.
func Decode(body []byte, queryCommand string) (*Callback, error) {
	if err := checkStrictJSON(body); err != nil {
		return nil, &DecodeError{Reason: ReasonNotJSON, Err: err}
	}
	var cb Callback
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&cb); err != nil {
		return nil, decodeErr(ReasonNotJSON, "body is not a JSON callback: %v", err)
	}
	if dec.More() {
		return nil, decodeErr(ReasonNotJSON, "body has data after the JSON object")
	}
	if cb.Command == "" || CanonicalCommand(cb.Command) != CanonicalCommand(queryCommand) {
		return nil, decodeErr(ReasonCommandMismatch, "CallbackCommand %q in the body does not match %q in the query", cb.Command, queryCommand)
	}
	cb.Command = CanonicalCommand(cb.Command)
	switch {
	case IsRoomCommand(cb.Command):
		if err := cb.validate(); err != nil {
			return nil, &DecodeError{Reason: ReasonInvalidRoom, Err: err}
		}
	case cb.Command == CommandCreateRoomReachingThreshold:
		if err := cb.validateQuota(); err != nil {
			return nil, &DecodeError{Reason: ReasonInvalidQuota, Err: err}
		}
	}
	return &cb, nil
}

// ValidRoomID checks Tencent's RoomId rule: 1 to 48 bytes of printable ASCII.
func ValidRoomID(id string) error {
	if id == "" {
		return errors.New("RoomId is missing")
	}
	if len(id) > MaxRoomIDBytes {
		return fmt.Errorf("RoomId is %d bytes, more than %d", len(id), MaxRoomIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return fmt.Errorf("RoomId has a byte 0x%02x outside printable ASCII", id[i])
		}
	}
	return nil
}

func (c *Callback) validate() error {
	if err := ValidRoomID(c.Room()); err != nil {
		return err
	}
	if c.RoomID != "" && c.RoomInfo != nil && c.RoomInfo.RoomID != "" && c.RoomInfo.RoomID != c.RoomID {
		return fmt.Errorf("RoomId %q differs from RoomInfo.RoomId %q", c.RoomID, c.RoomInfo.RoomID)
	}
	if c.EventTime < 0 || c.EventTime > MaxEventMillis {
		return fmt.Errorf("EventTime %d is not a millisecond time between 1970 and 9999", c.EventTime)
	}
	if ri := c.RoomInfo; ri != nil {
		if err := ri.Validate(); err != nil {
			return err
		}
	}
	if len(c.AdminAccounts) > MaxAdmins {
		return fmt.Errorf("Admin_Account has %d entries, more than %d", len(c.AdminAccounts), MaxAdmins)
	}
	for _, a := range append([]FlexString{c.CurrentOwnerAccount}, c.AdminAccounts...) {
		if err := checkLen("account", string(a), MaxUserIDBytes); err != nil {
			return err
		}
	}
	if err := validateSeats(c.SeatList); err != nil {
		return err
	}
	if err := validateMetadata(c.Metadata, c.Keys); err != nil {
		return err
	}
	if c.Command == CommandCreateRoom && c.RoomInfo == nil {
		return errors.New("RoomInfo is missing")
	}
	return nil
}

// validateSeats checks a seat list against what a LiveRoom's status.seats can hold: at
// most MaxSeats seats, each Index an int32 that no other seat has.
func validateSeats(seats []Seat) error {
	if len(seats) > MaxSeats {
		return fmt.Errorf("SeatList has %d seats, more than %d", len(seats), MaxSeats)
	}
	seen := make(map[FlexInt]bool, len(seats))
	for _, s := range seats {
		if s.Index < 0 || s.Index > MaxSeatIndex {
			return fmt.Errorf("seat Index %d is outside 0..%d", s.Index, MaxSeatIndex)
		}
		if seen[s.Index] {
			return fmt.Errorf("seat Index %d appears twice in SeatList", s.Index)
		}
		seen[s.Index] = true
		if err := checkLen(fmt.Sprintf("Member_Account of seat %d", s.Index), string(s.Account), MaxUserIDBytes); err != nil {
			return err
		}
	}
	return nil
}

// validateMetadata checks a metadata callback against Tencent's limits on a room's
// metadata: what one callback sets or deletes must fit in a room by itself.
func validateMetadata(set []MetadataEntry, deleted []string) error {
	if len(set) > MaxMetadataKeys {
		return fmt.Errorf("Metadata has %d keys, more than %d", len(set), MaxMetadataKeys)
	}
	if len(deleted) > MaxMetadataKeys {
		return fmt.Errorf("Keys has %d keys, more than %d", len(deleted), MaxMetadataKeys)
	}
	seen := make(map[string]bool, len(set))
	total := 0
	for _, e := range set {
		if err := checkMetadataKey(e.Key); err != nil {
			return err
		}
		if seen[e.Key] {
			return fmt.Errorf("metadata key %q appears twice", e.Key)
		}
		seen[e.Key] = true
		if err := checkLen(fmt.Sprintf("the value of metadata key %q", e.Key), e.Value, MaxMetadataValueBytes); err != nil {
			return err
		}
		total += len(e.Value)
	}
	if total > MaxMetadataTotalBytes {
		return fmt.Errorf("metadata values are %d bytes in all, more than %d", total, MaxMetadataTotalBytes)
	}
	for _, k := range deleted {
		if err := checkMetadataKey(k); err != nil {
			return err
		}
	}
	return nil
}

func checkMetadataKey(k string) error {
	if k == "" {
		return errors.New("a metadata key is empty")
	}
	return checkLen("metadata key", k, MaxMetadataKeyBytes)
}

// MetadataValueBytes is the size of a room's metadata as Tencent limits it: its values'
// bytes (MaxMetadataTotalBytes).
func MetadataValueBytes(metadata map[string]string) int {
	n := 0
	for _, v := range metadata {
		n += len(v)
	}
	return n
}

// validateQuota checks a room quota warning: counts that are counts, and a time.
func (c *Callback) validateQuota() error {
	if c.CurRoomCount < 0 || c.MaxRoomCount < 0 {
		return fmt.Errorf("CurRoomCount %d and MaxRoomCount %d must not be negative", c.CurRoomCount, c.MaxRoomCount)
	}
	if c.EventTime < 0 || c.EventTime > MaxEventMillis {
		return fmt.Errorf("EventTime %d is not a millisecond time between 1970 and 9999", c.EventTime)
	}
	return nil
}

// Validate checks the documented limits of a room's settings.
func (ri *RoomInfo) Validate() error {
	checks := []struct {
		name  string
		value *string
		max   int
	}{
		{"RoomName", ri.RoomName, MaxRoomNameBytes},
		{"CoverURL", ri.CoverURL, MaxURLBytes},
		{"BackgroundURL", ri.BackgroundURL, MaxURLBytes},
		{"Notice", ri.Notice, MaxNoticeBytes},
		{"CustomInfo", ri.CustomInfo, MaxCustomInfoBytes},
	}
	for _, c := range checks {
		if c.value != nil {
			if err := checkLen(c.name, *c.value, c.max); err != nil {
				return err
			}
		}
	}
	if err := checkLen("Owner_Account", string(ri.OwnerAccount), MaxUserIDBytes); err != nil {
		return err
	}
	if err := checkLen("RoomType", ri.RoomType, 32); err != nil {
		return err
	}
	if ri.CreateTime < 0 || ri.CreateTime > MaxCreateSeconds {
		return fmt.Errorf("CreateTime %d is not a time in seconds between 1970 and 9999", ri.CreateTime)
	}
	if len(ri.Category) > MaxCategories {
		return fmt.Errorf("Category has %d entries, more than %d", len(ri.Category), MaxCategories)
	}
	for _, c := range ri.Category {
		if c < 0 {
			return fmt.Errorf("Category %d is negative", c)
		}
	}
	for _, n := range []*FlexInt{ri.MaxMemberCount, ri.MaxSeatCount} {
		if n != nil && (*n < 0 || *n > 1<<31-1) {
			return fmt.Errorf("member or seat count %d is out of range", *n)
		}
	}
	if ri.MaxSeatCount != nil && *ri.MaxSeatCount > MaxSeats {
		return fmt.Errorf("MaxSeatCount %d is more than %d", *ri.MaxSeatCount, MaxSeats)
	}
	return nil
}

func checkLen(name, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%s is %d bytes, more than %d", name, len(v), max)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not valid UTF-8", name)
	}
	return nil
}
