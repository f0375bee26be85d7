package tencent

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// UserSig verification failures; wrap them so callers can tell an expired signature
// (renew it) from a forged or mismatched one (wrong key or account).
var (
	ErrUserSigMalformed = errors.New("usersig is malformed")
	ErrUserSigMismatch  = errors.New("usersig does not match")
	ErrUserSigExpired   = errors.New("usersig has expired")
)

// sigEncoding is base64 with Tencent's URL-safe substitutions: + → *, / → -, = → _.
var sigEncoding = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-").WithPadding('_')

// maxSigDocBytes bounds inflation so a hostile signature cannot exhaust memory.
const maxSigDocBytes = 64 << 10

// userSigDoc is the JSON document inside a UserSig (TLSSigAPIv2).
type userSigDoc struct {
	Version    string `json:"TLS.ver"`
	Identifier string `json:"TLS.identifier"`
	SDKAppID   int64  `json:"TLS.sdkappid"`
	Expire     int64  `json:"TLS.expire"`
	Time       int64  `json:"TLS.time"`
	Sig        string `json:"TLS.sig"`
	UserBuf    string `json:"TLS.userbuf,omitempty"`
}

// userSigHMAC signs the content lines; every line, the last included, ends with \n.
func userSigHMAC(key, identifier string, sdkAppID, unix, expire int64) string {
	content := "TLS.identifier:" + identifier + "\n" +
		"TLS.sdkappid:" + strconv.FormatInt(sdkAppID, 10) + "\n" +
		"TLS.time:" + strconv.FormatInt(unix, 10) + "\n" +
		"TLS.expire:" + strconv.FormatInt(expire, 10) + "\n"
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(content))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// GenUserSig signs identifier for sdkAppID with the application's secret key, valid
// from now for expire (whole seconds). The key is used as raw bytes, not hex-decoded.
func GenUserSig(sdkAppID int64, key, identifier string, expire time.Duration, now time.Time) (string, error) {
	switch {
	case sdkAppID <= 0:
		return "", fmt.Errorf("usersig: invalid SDKAppID %d", sdkAppID)
	case key == "":
		return "", errors.New("usersig: empty secret key")
	case identifier == "":
		return "", errors.New("usersig: empty identifier")
	case expire < time.Second:
		return "", fmt.Errorf("usersig: expiry %v is shorter than a second", expire)
	}
	secs := int64(expire / time.Second)
	doc := userSigDoc{
		Version:    "2.0",
		Identifier: identifier,
		SDKAppID:   sdkAppID,
		Expire:     secs,
		Time:       now.Unix(),
	}
	doc.Sig = userSigHMAC(key, identifier, sdkAppID, doc.Time, secs)
	raw, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	zw, err := zlib.NewWriterLevel(&buf, zlib.BestSpeed)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(raw); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return sigEncoding.EncodeToString(buf.Bytes()), nil
}

// decodeUserSig undoes the encoding and compression of a UserSig.
func decodeUserSig(sig string) (*userSigDoc, error) {
	compressed, err := sigEncoding.DecodeString(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUserSigMalformed, err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUserSigMalformed, err)
	}
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, maxSigDocBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUserSigMalformed, err)
	}
	if len(raw) > maxSigDocBytes {
		return nil, fmt.Errorf("%w: document larger than %d bytes", ErrUserSigMalformed, maxSigDocBytes)
	}
	var doc userSigDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUserSigMalformed, err)
	}
	return &doc, nil
}

// VerifyUserSig checks that sig was made with key for sdkAppID and identifier and has not
// expired at now. Signatures carrying a userbuf (PrivateMapKey) are refused: they are
// not used here.
func VerifyUserSig(sdkAppID int64, key, identifier, sig string, now time.Time) error {
	doc, err := decodeUserSig(sig)
	if err != nil {
		return err
	}
	switch {
	case doc.SDKAppID != sdkAppID:
		return fmt.Errorf("%w: SDKAppID %d, want %d", ErrUserSigMismatch, doc.SDKAppID, sdkAppID)
	case doc.Identifier != identifier:
		return fmt.Errorf("%w: identifier %q, want %q", ErrUserSigMismatch, doc.Identifier, identifier)
	case doc.UserBuf != "":
		return fmt.Errorf("%w: unexpected userbuf", ErrUserSigMismatch)
	}
	want := userSigHMAC(key, doc.Identifier, doc.SDKAppID, doc.Time, doc.Expire)
	if !hmac.Equal([]byte(want), []byte(doc.Sig)) {
		return fmt.Errorf("%w: bad signature", ErrUserSigMismatch)
	}
	if now.Unix() > doc.Time+doc.Expire {
		return fmt.Errorf("%w at %s", ErrUserSigExpired, time.Unix(doc.Time+doc.Expire, 0).UTC().Format(time.RFC3339))
	}
	return nil
}
