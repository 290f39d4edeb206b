// The ContainerTests fixture, built static for the guest as /bin/containers.
#include "../../Fixture/containers.c"
