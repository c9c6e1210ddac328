// Command gateway is a stand-in gateway for trying gwlock: it serves HTTP on
// --port after a short boot, logs to stdout, and exits cleanly on SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", 18789, "TCP port to serve on 127.0.0.1")
	boot := flag.Duration("boot", 300*time.Millisecond, "pretend start-up time before listening")
	flag.Parse()
	log.SetPrefix("gateway: ")
	log.Printf("pid %d booting, lock %s", os.Getpid(), os.Getenv("GWLOCK_LOCK_PATH"))
	time.Sleep(*boot)
	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", *port), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "gateway pid %d\n", os.Getpid())
	})}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-stop
		log.Printf("stopping")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("listening on %s", srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
