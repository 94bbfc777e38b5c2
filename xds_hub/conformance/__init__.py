"""Conformance testing (issue 4): a Gazelle-style scenario runner and a message validator.

- :mod:`.scenario`: the scenario files (TOML) of the catalogue (``conformance/scenarios``, shipped
  with the package as ``xds_hub/conformance/catalogue``);
- :mod:`.engine`: runs scenarios against any endpoint, over the wire only (:mod:`.wire`,
  :mod:`.dicom`), with the messages of :mod:`.submission` / :mod:`.messages` and the checks of
  :mod:`.checks`; :mod:`.report` writes the console summary, JUnit XML and the HTML report;
- :mod:`.validator`: ``xds-hub validate FILE``, with the hub's own validation code.
"""
