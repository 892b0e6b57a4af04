/* optim_settings.h: the settings an optimizer may read (optimizers.def's `reads`), each the
 * option of that name in rt_options. optim.c makes its rows' defaults from this list, and
 * compiler/sema.c its check that a train block's optimizer reads each setting it is given. */
#ifndef NNRT_OPTIM_SETTINGS_H
#define NNRT_OPTIM_SETTINGS_H

#define OPTIM_SETTINGS(X) X(momentum) X(nesterov) X(beta1) X(beta2) X(rho) X(eps) X(weight_decay)

#endif
