// Adapts the protocol engine (stack::Stack, daemon/stack) to the engine
// loop's PacketProcessor: received frames go to Stack::ProcessRx, the
// frames the stack wants to send are written straight into driver TX
// buffers (no copy through an intermediate pool), timers and the sleep
// deadline come from the stack's timer wheel.
//
// Clock: the engine passes CLOCK_MONOTONIC nanoseconds (MonotonicNowNs());
// create the Stack with the same clock.
// Thread safety: like every PacketProcessor, engine thread only; the stack
// is reached from other threads only through Engine::Post/RunSync.

#ifndef OFFLOAD_DAEMON_ENGINE_STACK_PROCESSOR_H_
#define OFFLOAD_DAEMON_ENGINE_STACK_PROCESSOR_H_

#include <memory>

#include "daemon/engine/packet_processor.h"
#include "daemon/stack/stack.h"

namespace offload::engine {

// Receives the stack's flow events (connected, readable, closed, ...) on the
// engine thread, once per loop iteration in which there were any. The sink
// may call the stack (e.g. TcpAccept, TcpReceiveCredit); events those calls
// raise are delivered in the same iteration.
class FlowEventSink {
 public:
  virtual ~FlowEventSink() = default;
  virtual void OnFlowEvents(const stack::FlowEvent* events, size_t n) = 0;
  // Called once per PollTx, after the events: cheap bookkeeping that must
  // see the stack between iterations (e.g. flows released in the
  // background). Must return quickly when there is nothing to do.
  virtual void OnPoll() {}
  // Called once per PollTx before the stack's output is drained: picks up
  // what applications did on their shared rings (new data, consumed data,
  // shutdowns) and hands it to the stack. Returns the amount of work found
  // (0: nothing new).
  virtual size_t PollApplications() { return 0; }
  // Called when the engine is about to sleep (after Doorbell's fence):
  // asks every application ring to ring the engine's doorbell on its next
  // change (need-wake-up flags), fences, and re-checks. True if work
  // arrived meanwhile, so the engine must not sleep.
  virtual bool ArmApplicationWakeups() { return false; }
};

class StackProcessor : public PacketProcessor {
 public:
  // Transmits on the engine's queue number `tx_queue` (AF_XDP and verbs may
  // send any flow on any queue). `sink` (may be null: events are then left
  // in the stack for whoever calls PollEvents) must outlive the processor.
  explicit StackProcessor(std::unique_ptr<stack::Stack> stack,
                          size_t tx_queue = 0, FlowEventSink* sink = nullptr)
      : stack_(std::move(stack)), tx_queue_(tx_queue), sink_(sink) {}

  stack::Stack& stack() { return *stack_; }

  void OnFrames(size_t queue, const nic::RxFrame* frames, size_t n, TimeNs now,
                TxBatch& tx) override;
  size_t PollTx(TxBatch* const* tx, size_t num_queues, TimeNs now) override;
  void OnTimers(TimeNs now) override;
  TimeNs NextTimerDeadline() const override;
  bool HasPendingWork() override {
    return stack_->HasPendingTx() || (sink_ != nullptr && sink_->ArmApplicationWakeups());
  }

 private:
  // Hands pending stack events to sink_; returns how many.
  size_t DeliverEvents();

  std::unique_ptr<stack::Stack> stack_;
  size_t tx_queue_;
  FlowEventSink* sink_;
};

}  // namespace offload::engine

#endif  // OFFLOAD_DAEMON_ENGINE_STACK_PROCESSOR_H_
