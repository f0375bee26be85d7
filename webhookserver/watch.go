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
// whenever a LiveApp or a projection Secret changes, until ctx ends; done is closed once
// it no longer does. Fan-outs run until forwardCtx ends.
func (s *Server) watchApps(ctx, forwardCtx context.Context) (done <-chan struct{}, err error) {
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
	var unwatch []func()
	stopWatching := func() {
		for _, f := range unwatch {
			f()
		}
	}
	for _, obj := range []client.Object{&livev1.LiveApp{}, &corev1.Secret{}} {
		informer, err := s.opts.Apps.GetInformer(ctx, obj)
		if err != nil {
			stopWatching()
			return nil, fmt.Errorf("watching %T: %w", obj, err)
		}
		reg, err := informer.AddEventHandler(handler)
		if err != nil {
			stopWatching()
			return nil, fmt.Errorf("watching %T: %w", obj, err)
		}
		unwatch = append(unwatch, func() { _ = informer.RemoveEventHandler(reg) })
	}
	if !s.opts.Apps.WaitForCacheSync(ctx) {
		stopWatching()
		return nil, errors.New("the cache of LiveApps and projection Secrets did not sync")
	}
	// The cache holds everything now; events of the initial list may still come, and
	// only cause another load.
	s.syncApps(ctx, forwardCtx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer stopWatching()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				if ctx.Err() != nil {
					return
				}
				s.syncApps(ctx, forwardCtx)
			}
		}
	}()
	return stopped, nil
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
