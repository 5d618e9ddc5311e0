// A TensorFlow op library for the tests of custom_op_paths: TfaasTimesTwo, y = 2 * x (float, any shape).
// Built by the tests with g++ and TensorFlow's own headers (tf.sysconfig's compile and link flags).
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;

class TimesTwoOp : public OpKernel {
 public:
  explicit TimesTwoOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& input = context->input(0);
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, input.shape(), &output));
    auto x = input.flat<float>();
    auto y = output->flat<float>();
    for (int64_t i = 0; i < x.size(); ++i) y(i) = 2.0f * x(i);
  }
};

}  // namespace

REGISTER_OP("TfaasTimesTwo")
    .Input("x: float")
    .Output("y: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("TfaasTimesTwo").Device(::tensorflow::DEVICE_CPU), TimesTwoOp);
