"""Apache Beam jobs; installed as ``skypile.pipelines``. The only place (with trainer/) that imports apache_beam."""
