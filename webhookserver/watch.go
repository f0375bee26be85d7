package webhookserver

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
)

// watchApps loads the served apps from the cache once it has synced, and then again
// whenever a LiveApp or a projection Secret changes, until ctx ends. Fan-outs run until
// forwardCtx ends.
func (s *Server) watchApps(ctx, forwardCtx context.Context) error {
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	for _, obj := range []client.Object{&livev1.LiveApp{}, &corev1.Secret{}} {
		informer, err := s.opts.Apps.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
		if _, err := informer.AddEventHandler(handler); err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
	}
	if !s.opts.Apps.WaitForCacheSync(ctx) {
		return errors.New("the cache of LiveApps and projection Secrets did not sync")
	}
	// The cache holds everything now; events of the initial list may still come, and
	// only cause another load.
	s.syncApps(ctx, forwardCtx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				s.syncApps(ctx, forwardCtx)
			}
		}
	}()
	return nil
}

// syncApps brings the app table to what the cache holds.
func (s *Server) syncApps(ctx, forwardCtx context.Context) {
	var list livev1.LiveAppList
	if err := s.opts.Apps.List(ctx, &list); err != nil {
		if ctx.Err() == nil {
			s.log.Error(err, "Listing LiveApps failed; serving the apps loaded before")
		}
		return
	}
	s.apps.update(forwardCtx, list.Items, func(uid types.UID) *corev1.Secret {
		var proj corev1.Secret
		key := client.ObjectKey{Namespace: s.opts.OperatorNamespace, Name: apps.ProjectionName(uid)}
		if err := s.opts.Apps.Get(ctx, key, &proj); err != nil || proj.Labels[apps.ProjectionAppLabel] != string(uid) {
			return nil
		}
		return &proj
	})
}
