"""The Document Repository actor: ITI-41 Provide and Register (:mod:`.iti41`), ITI-43 Retrieve
(:mod:`.iti43`), its table (:mod:`.store`) and the orphan-blob sweep (:mod:`.sweep`)."""
