"""`StageContext`: what every training stage of a run shares."""

import dataclasses
import os


@dataclasses.dataclass
class StageContext:
    """What every stage needs: config, strategy, model and where to write."""

    config: object
    workdir: str
    strategy: object
    model: object
    chief: bool
    # The chief writes into `workdir`; other workers into their own scratch
    # folder so that files never collide.
    write_root: str
    verbose: int
    seed: int
    pristine: dict = dataclasses.field(default_factory=dict)
    mos_splits: dict = dataclasses.field(default_factory=dict)
    # Folders the pristine images and the fine-tuning records come from.
    pristine_dir: str = ""
    mos_dir: str = ""
    precise_bn: object = None

    @classmethod
    def for_run(cls, config, workdir, strategy, verbose=None, model=None):
        """The context of a run in `workdir` (verbose: default from config)."""
        from tfiqa.training.strategy import is_chief, worker_write_root

        return cls(
            config=config,
            workdir=workdir,
            strategy=strategy,
            model=model,
            chief=is_chief(strategy),
            write_root=worker_write_root(strategy, workdir),
            verbose=config.runtime.verbose if verbose is None else int(verbose),
            seed=int(config.runtime.seed),
        )

    def stage_dir(self, stage, chief_copy=False):
        root = self.workdir if chief_copy else self.write_root
        return os.path.join(root, "checkpoints", stage)

    def log(self, message):
        if self.chief and self.verbose >= 0:
            print(message, flush=True)
